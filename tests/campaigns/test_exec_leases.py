"""Leases: one poller per batch endpoint at a time, so a hanging batch command holds up
one worker and never all of them; a lease dies with its holder."""

import subprocess
import sys
import threading

import pytest
from django.db import connection

from campaigns.batch import BatchState
from campaigns.choices import JobState
from campaigns.execution import backends, leases, polling, submission
from campaigns.models import Job
from tests.campaigns.exec_support import DEMO_STAGES, demo_template, launch

pytestmark = pytest.mark.django_db


class Holder:
    """Another worker: holds a lease from its own thread (its own database connection)
    until told to let go."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.taken = threading.Event()
        self.let_go = threading.Event()
        self.got: bool | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with leases.held(self.name) as lease:
                self.got = lease is not None
                self.taken.set()
                self.let_go.wait(20)
        finally:
            connection.close()

    def __enter__(self) -> "Holder":
        self.thread.start()
        assert self.taken.wait(20)
        return self

    def __exit__(self, *exc) -> None:
        self.let_go.set()
        self.thread.join(20)


def test_a_lease_has_one_holder_at_a_time_and_is_given_back():
    first = leases.try_acquire("poll:test")
    assert first is not None
    assert leases.try_acquire("poll:test") is None  # the same process asking again
    assert leases.try_acquire("poll:other") is not None  # names are independent
    first.release()
    first.release()  # twice is harmless
    again = leases.try_acquire("poll:test")
    assert again is not None
    again.release()


def test_a_lease_held_by_another_worker_is_refused_until_released():
    with Holder("poll:shared") as other:
        assert other.got
        assert leases.try_acquire("poll:shared") is None
    mine = leases.try_acquire("poll:shared")
    assert mine is not None
    mine.release()


def test_a_lease_dies_with_its_holder():
    """A worker killed mid-poll: its database session (PostgreSQL) or its process's file
    lock (SQLite) ends, and the lease with it."""
    if connection.vendor == "postgresql":
        done = threading.Event()

        def hold_and_drop() -> None:
            assert leases.try_acquire("poll:dropped") is not None
            connection.close()  # what a killed worker's connection does
            done.set()

        worker = threading.Thread(target=hold_and_drop)
        worker.start()
        worker.join(20)
        assert done.is_set()
        leases._HELD.discard("poll:dropped")  # the dead process's memory went with it
    else:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_AND_WAIT, str(leases.lock_path("poll:dropped"))],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "held"
            assert leases.try_acquire("poll:dropped") is None
        finally:
            holder.kill()
            holder.wait(20)
    lease = leases.try_acquire("poll:dropped")
    assert lease is not None
    lease.release()


# Another process taking the SQLite lease's file lock, then waiting to be killed.
HOLD_AND_WAIT = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def queued(exec_env, fake_backend, experiment, operator):
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    campaign, _request = launch(experiment, operator, events=60, per_job=10, template=template)
    submission.submit_ready()
    jobs = list(Job.objects.filter(stage__campaign=campaign).order_by("index"))
    assert [j.state for j in jobs] == [JobState.QUEUED] * 6
    return campaign, jobs


def test_a_backend_polled_elsewhere_is_skipped_and_the_others_are_polled(
    queued, fake_backend, monkeypatch
):
    """Worker 1 is inside a poll of a hanging batch system; worker 2's poll does not wait
    on it too, but writes what the other backend answered and returns."""
    _campaign, jobs = queued
    Job.objects.filter(pk__in=[j.pk for j in jobs[3:]]).update(backend="stuck")
    fake_backend.set(jobs, BatchState.RUNNING)
    asked = []

    class Hanging:
        def status(self, refs):
            asked.append(len(refs))
            return fake_backend.status(refs)

    hanging = Hanging()
    monkeypatch.setattr(backends, "backend", lambda n: hanging if n == "stuck" else fake_backend)

    with Holder("poll:stuck"):
        report = polling.poll()
    assert report.busy == {"stuck"}
    assert asked == []
    assert report.moved == 3
    assert Job.objects.filter(state=JobState.RUNNING).count() == 3

    report = polling.poll()  # the other worker is done: this one asks it now
    assert report.busy == set()
    assert asked == [3]
    assert Job.objects.filter(state=JobState.RUNNING).count() == 6

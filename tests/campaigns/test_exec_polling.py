"""Polling: one status call per backend, only changed jobs written, in bulk, counters in step;
an unreachable batch system changes nothing."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.batch import BatchState
from campaigns.choices import JobState
from campaigns.execution import finalize, inflight, polling, submission
from campaigns.models import Job, Stage
from tests.campaigns.exec_support import (
    DEMO_STAGES,
    assert_counters_match,
    demo_template,
    launch,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(exec_env, fake_backend, experiment, operator):
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    campaign, _request = launch(experiment, operator, events=60, per_job=10, template=template)
    submission.submit_ready()
    jobs = list(Job.objects.filter(stage__campaign=campaign).order_by("index"))
    assert [j.state for j in jobs] == [JobState.QUEUED] * 6
    return campaign, jobs


def updates(ctx, table):
    return [q["sql"] for q in ctx.captured_queries if q["sql"].startswith(f'UPDATE "{table}"')]


def test_poll_writes_only_the_jobs_that_changed_in_bulk(queued, fake_backend):
    campaign, jobs = queued
    fake_backend.set(jobs[:2], BatchState.RUNNING)
    calls = fake_backend.calls["status"]

    with CaptureQueriesContext(connection) as ctx:
        report = polling.poll()

    assert fake_backend.calls["status"] == calls + 1  # one bulk query for all six
    assert (report.polled, report.moved) == (6, 2)
    assert len(updates(ctx, "campaigns_job")) == 1  # one bulk UPDATE for the two rows
    assert len(updates(ctx, "campaigns_stage")) == 1  # the counters, same transaction
    stage = Stage.objects.get(campaign=campaign)
    assert (stage.n_queued, stage.n_running) == (4, 2)
    assert Job.objects.filter(state=JobState.RUNNING, started__isnull=False).count() == 2
    assert_counters_match(campaign)

    # Nothing changed since: nothing is written.
    with CaptureQueriesContext(connection) as ctx:
        report = polling.poll()
    assert report.moved == report.finished == 0
    assert not [q for q in ctx.captured_queries if q["sql"].startswith(("UPDATE", "INSERT"))]


def test_finished_jobs_wait_for_finalize_in_their_state(queued, fake_backend):
    campaign, jobs = queued
    fake_backend.set(jobs[:1], BatchState.FAILED, exit_code=3, reason="FAILED")

    report = polling.poll()

    assert report.finished == 1
    job = Job.objects.get(pk=jobs[0].pk)
    assert (job.state, job.outcome, job.exit_code) == (JobState.QUEUED, "failed", 3)
    polling.poll()  # not asked about again
    finalize.finalize_outcomes()
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert Job.objects.filter(parent=job, attempt=2, state=JobState.PLANNED).exists()
    assert_counters_match(campaign)


def test_unreachable_batch_system_marks_nothing_failed_or_lost(queued, fake_backend):
    _campaign, jobs = queued
    fake_backend.set(jobs, BatchState.RUNNING)
    fake_backend.unavailable = True

    with CaptureQueriesContext(connection) as ctx:
        report = polling.poll()

    assert report.unavailable == {"local"}
    assert not [q for q in ctx.captured_queries if q["sql"].startswith(("UPDATE", "INSERT"))]
    assert set(Job.objects.values_list("state", flat=True)) == {JobState.QUEUED}
    fake_backend.unavailable = False
    assert polling.poll().moved == 6


def test_bulk_write_of_many_jobs_is_a_few_statements(
    exec_env,
    fake_backend,
    experiment,
    operator,
    settings,
):
    settings.OPOS_BACKEND_CAPACITY = {"local": 2000}
    experiment.job_quota = 2000
    experiment.save()
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    campaign, _ = launch(experiment, operator, events=1200, per_job=1, template=template)
    submission.submit_ready()
    jobs = list(Job.objects.filter(stage__campaign=campaign))
    assert len(jobs) == 1200
    fake_backend.set(jobs, BatchState.RUNNING)

    with CaptureQueriesContext(connection) as ctx:
        assert polling.poll().moved == 1200

    # One UPDATE ... FROM (VALUES ...) on PostgreSQL; SQLite's variable limit makes batches.
    expected = 1 if connection.vendor == "postgresql" else 8
    assert len(updates(ctx, "campaigns_job")) <= expected
    assert len(ctx.captured_queries) < 13 + expected  # two are the lease, taken and given back
    assert_counters_match(campaign)


def test_a_job_moved_by_someone_else_since_the_read_is_left_alone(queued, fake_backend):
    """Compare-and-set: the write holds only for jobs still in the state the poll read."""
    campaign, jobs = queued
    fake_backend.set(jobs[:3], BatchState.RUNNING)
    fake_backend.set(jobs[3:4], BatchState.SUCCEEDED, exit_code=0)
    read = inflight.read()
    statuses = fake_backend.status(read)
    # Between the poll's read and its write: stuck detection holds job 0, another poller
    # already recorded job 1 running and job 3's outcome.
    Job.objects.filter(pk=jobs[0].pk).update(state=JobState.HELD)
    Stage.objects.filter(campaign=campaign).update(n_queued=5, n_held=1)
    Job.objects.filter(pk=jobs[1].pk).update(state=JobState.RUNNING)
    Stage.objects.filter(campaign=campaign).update(n_queued=4, n_running=1)
    Job.objects.filter(pk=jobs[3].pk).update(outcome="succeeded", exit_code=0)

    moved, finished = polling.apply(polling.compare(read, statuses), polling.timezone.now())

    assert (moved, finished) == (1, 0)  # only job 2 was still as read
    states = dict(Job.objects.values_list("id", "state"))
    assert states[jobs[0].pk] == JobState.HELD  # not overwritten with running
    assert states[jobs[2].pk] == JobState.RUNNING
    assert_counters_match(campaign)  # the counters moved by what really moved


def test_a_deadlock_is_written_again(queued, fake_backend, monkeypatch):
    """Should PostgreSQL ever pick a deadlock victim among the poll's writes, the whole
    transaction is rolled back and written again, not lost until the next cycle."""
    from django.db import OperationalError

    class Deadlock(Exception):
        sqlstate = "40P01"

    real, calls = polling._write, []

    def deadlock_once(*args):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("deadlock detected") from Deadlock()
        return real(*args)

    monkeypatch.setattr(polling, "_write", deadlock_once)
    campaign, jobs = queued
    fake_backend.set(jobs, BatchState.RUNNING)

    assert polling.poll().moved == 6
    assert len(calls) == 2
    assert_counters_match(campaign)


def test_other_database_errors_are_not_retried(queued, fake_backend, monkeypatch):
    from django.db import OperationalError

    calls = []

    def broken(*args):
        calls.append(1)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(polling, "_write", broken)
    _campaign, jobs = queued
    fake_backend.set(jobs, BatchState.RUNNING)
    with pytest.raises(OperationalError):
        polling.poll()
    assert len(calls) == 1


def test_a_hanging_batch_system_holds_up_only_its_own_jobs(queued, fake_backend, monkeypatch):
    """The backends are asked side by side: the answer of one that answers at once is
    written while another one's status command still hangs."""
    import threading

    from campaigns.execution import backends

    campaign, jobs = queued
    Job.objects.filter(pk__in=[j.pk for j in jobs[3:]]).update(backend="stuck")
    fake_backend.set(jobs, BatchState.RUNNING)
    events, release = [], threading.Event()

    class Hanging:
        def status(self, refs):
            release.wait(10)
            events.append("stuck answered")
            return fake_backend.status(refs)

    hanging = Hanging()
    monkeypatch.setattr(backends, "backend", lambda n: hanging if n == "stuck" else fake_backend)
    real_write = polling.write

    def write(changes, now):
        events.append(f"wrote {len(changes)}")
        written = real_write(changes, now)
        release.set()  # the other answer was written: let the hanging one go
        return written

    monkeypatch.setattr(polling, "write", write)

    report = polling.poll()

    assert events == ["wrote 3", "stuck answered", "wrote 3"]
    assert report.moved == 6
    assert_counters_match(campaign)


def test_every_execution_write_bumps_the_pages_data_version(
    queued, fake_backend, django_capture_on_commit_callbacks
):
    """The monitoring pages are cached per data version (common/pagecache.py): the poller's
    moves, its recorded ends, finalize and a submission each bump it after their commit,
    and a poll that changed nothing does not."""
    from common import pagecache

    _campaign, jobs = queued
    version = pagecache.data_version

    def bumps(action) -> int:
        before = version()
        with django_capture_on_commit_callbacks(execute=True):
            action()
        return version() - before

    assert bumps(polling.poll) == 0
    fake_backend.set(jobs[:2], BatchState.RUNNING)
    assert bumps(polling.poll) == 1
    fake_backend.set(jobs[:1], BatchState.SUCCEEDED, exit_code=0)
    assert bumps(polling.poll) == 1
    assert bumps(finalize.finalize_outcomes) >= 1


def test_per_endpoint_polling_sends_a_task_for_each_endpoint(
    exec_env, fake_backend, experiment, operator, settings, monkeypatch
):
    """``OPOS_POLL_PER_ENDPOINT``: the cycle's poll sends what the operators asked for once,
    then one poll task per endpoint with jobs in flight, each polling only its own."""
    from campaigns import tasks

    settings.OPOS_POLL_PER_ENDPOINT = True
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    on_local, _ = launch(experiment, operator, events=30, per_job=10, template=template)
    on_slurm, _ = launch(
        experiment, operator, events=20, per_job=10, template=template, backend="slurm"
    )
    submission.submit_ready()
    fake_backend.set(Job.objects.filter(state=JobState.QUEUED), BatchState.RUNNING)
    sent, requests_sent = [], []
    monkeypatch.setattr(tasks.poll, "apply_async", lambda args, expires: sent.append(args))
    cancel_requested = polling.cancel_requested
    monkeypatch.setattr(
        polling, "cancel_requested", lambda: requests_sent.append(1) or cancel_requested()
    )

    summary = tasks.poll.apply().result
    assert summary["per_endpoint"] == ["local", "slurm"]
    assert sent == [["local"], ["slurm"]] and summary["polled"] == 0
    assert not Job.objects.filter(state=JobState.RUNNING).exists()  # nothing polled yet

    # Each task, whichever worker takes it, polls its own endpoint's jobs only.
    on_its_own = tasks.poll.apply(args=["slurm"]).result
    assert (on_its_own["polled"], on_its_own["moved"]) == (2, 2)
    running = Job.objects.filter(state=JobState.RUNNING)
    assert set(running.values_list("stage__campaign", flat=True)) == {on_slurm.pk}
    assert tasks.poll.apply(args=["local"]).result["moved"] == 3
    assert running.filter(stage__campaign=on_local).count() == 3
    assert len(requests_sent) == 1  # cancels and controls: once, by the cycle's own poll


def test_per_endpoint_polling_with_one_endpoint_polls_at_once(
    queued, fake_backend, settings, monkeypatch
):
    from campaigns import tasks

    settings.OPOS_POLL_PER_ENDPOINT = True
    _campaign, jobs = queued
    sent = []
    monkeypatch.setattr(tasks.poll, "apply_async", lambda args, expires: sent.append(args))
    fake_backend.set(jobs[:2], BatchState.RUNNING)
    summary = tasks.poll.apply().result
    assert sent == [] and (summary["polled"], summary["moved"]) == (6, 2)
    assert "per_endpoint" not in summary and "usage" in summary

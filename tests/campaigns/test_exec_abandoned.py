"""A submission left ``submitting`` by a process known to be gone is resolved on the next
recovery cycle, not after the grace period; one whose claimant lives is left alone. Either
way each job is submitted exactly once."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
from django.utils import timezone

from campaigns.choices import SubmissionState
from campaigns.execution import heartbeat, recovery, submission
from campaigns.execution.submission import SimulatedCrash
from campaigns.models import ProcessRole, Submission
from tests.campaigns.exec_support import exec_env  # noqa: F401 - fixture
from tests.campaigns.test_exec_submission import (  # noqa: F401 - backend_name is a fixture
    assert_exactly_once,
    backend_name,
    crash_at,
    one_stage_campaign,
)

OTHER_HOST = "node-elsewhere"


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def crashed_submission(monkeypatch, point: str) -> Submission:
    monkeypatch.setattr(submission, "crash_hook", crash_at(point))
    with pytest.raises(SimulatedCrash):
        submission.submit_ready()
    monkeypatch.setattr(submission, "crash_hook", None)
    return Submission.objects.get(state=SubmissionState.SUBMITTING)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("point", "outcome"),
    [("claimed", "resubmitted"), ("prepared", "resubmitted"), ("submitted", "adopted")],
)
def test_claimed_by_a_dead_process_is_resolved_on_the_next_cycle(
    exec_env,  # noqa: F811
    experiment,
    operator,
    monkeypatch,
    backend_name,  # noqa: F811
    point,
    outcome,
):
    campaign, log = one_stage_campaign(experiment, operator, exec_env, backend_name)
    stuck = crashed_submission(monkeypatch, point)
    # The claim names this host (and pid namespace) and the process that made it.
    assert (stuck.claimed_host, stuck.claimed_pid) == (heartbeat.process_space(), os.getpid())
    Submission.objects.filter(pk=stuck.pk).update(claimed_pid=dead_pid())

    report = recovery.recover()  # the default grace period, which has not passed

    assert getattr(report, outcome) == [stuck.token]
    assert_exactly_once(campaign, log, backend_name, exec_env / "spool")


@pytest.mark.django_db(transaction=True)
def test_claimed_by_a_live_process_waits_for_the_grace_period(
    exec_env,  # noqa: F811
    experiment,
    operator,
    monkeypatch,
):
    campaign, log = one_stage_campaign(experiment, operator, exec_env, "local")
    stuck = crashed_submission(monkeypatch, "prepared")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        Submission.objects.filter(pk=stuck.pk).update(claimed_pid=live.pid)
        report = recovery.recover()
        assert report.resubmitted == report.adopted == []
        assert Submission.objects.get(pk=stuck.pk).state == SubmissionState.SUBMITTING
    finally:
        live.kill()
        live.wait()
    # Gone now: the next cycle resolves it.
    assert recovery.recover().resubmitted == [stuck.token]
    assert_exactly_once(campaign, log, "local", exec_env / "spool")


@pytest.mark.django_db(transaction=True)
def test_claimed_on_another_host_is_judged_by_its_workers_heartbeat(
    exec_env,  # noqa: F811
    experiment,
    operator,
    monkeypatch,
    settings,
):
    settings.OPOS_HEALTH_WORKER_SILENT_S = 30
    campaign, log = one_stage_campaign(experiment, operator, exec_env, "local")
    name = f"celery@{OTHER_HOST}"
    before = timezone.now() - dt.timedelta(seconds=5)
    heartbeat.record_start(name, ProcessRole.WORKER, OTHER_HOST, 77, now=before)
    stuck = crashed_submission(monkeypatch, "claimed")
    Submission.objects.filter(pk=stuck.pk).update(
        claimed_by=name, claimed_host=OTHER_HOST, claimed_pid=77
    )
    now = timezone.now()

    # Alive (its heartbeat is fresh), and not the worker started since: left alone.
    heartbeat.record_beat(name, 77, now=now)
    assert recovery.recover(now=now).resubmitted == []
    # Silent past the limit: gone.
    later = now + dt.timedelta(seconds=31)
    assert Submission.objects.get(pk=stuck.pk).state == SubmissionState.SUBMITTING
    stuck.refresh_from_db()
    assert heartbeat.claimant_gone(stuck, later).startswith(f"worker {name} silent since")
    # A newer worker under the same name: gone too, and resolved at once.
    heartbeat.record_start(name, ProcessRole.WORKER, OTHER_HOST, 78)
    assert recovery.recover().resubmitted == [stuck.token]
    assert_exactly_once(campaign, log, "local", exec_env / "spool")


def test_unknown_claimant_waits_for_the_grace_period():
    """Claims made outside a worker, or by an earlier version, carry no claimant."""
    stuck = Submission(claimed_by="", claimed_host="", claimed_pid=None)
    assert heartbeat.claimant_gone(stuck, timezone.now()) == ""


@pytest.mark.django_db(transaction=True)
def test_the_submit_cycle_resolves_an_abandoned_submission_before_it_plans(
    exec_env,  # noqa: F811
    experiment,
    operator,
    monkeypatch,
):
    from campaigns import tasks

    campaign, log = one_stage_campaign(experiment, operator, exec_env, "local")
    stuck = crashed_submission(monkeypatch, "submitted")
    Submission.objects.filter(pk=stuck.pk).update(claimed_pid=dead_pid())

    result = tasks.submit_ready.apply()

    assert result.successful(), result.traceback
    assert result.result["abandoned_resolved"] == 1
    assert Submission.objects.get(pk=stuck.pk).state == SubmissionState.SUBMITTED
    assert_exactly_once(campaign, log, "local", exec_env / "spool")


@pytest.mark.django_db(transaction=True)
def test_a_resolver_takes_the_claim_over_so_no_other_resolves_it_meanwhile(
    exec_env,  # noqa: F811
    experiment,
    operator,
    monkeypatch,
):
    campaign, log = one_stage_campaign(experiment, operator, exec_env, "local")
    stuck = crashed_submission(monkeypatch, "claimed")
    Submission.objects.filter(pk=stuck.pk).update(claimed_pid=dead_pid())
    # The resolver dies in the middle of resolving it...
    monkeypatch.setattr(submission, "crash_hook", crash_at("prepared"))
    with pytest.raises(SimulatedCrash):
        recovery.recover()
    monkeypatch.setattr(submission, "crash_hook", None)
    # ...having taken the claim over: while it lives, nobody else resolves the submission.
    taken = Submission.objects.get(pk=stuck.pk)
    assert (taken.claimed_host, taken.claimed_pid) == (heartbeat.process_space(), os.getpid())
    assert recovery.recover().resubmitted == []
    # Once it is gone, the next cycle does.
    Submission.objects.filter(pk=stuck.pk).update(claimed_pid=dead_pid())
    assert recovery.recover().resubmitted == [stuck.token]
    assert_exactly_once(campaign, log, "local", exec_env / "spool")

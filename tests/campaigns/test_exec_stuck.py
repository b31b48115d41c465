"""Stuck detection flags jobs and stages that stopped moving, with the reason, and resolves
the flags when the condition ends; cancel-and-retry cancels at the batch system and queues a
new attempt."""

import datetime as dt
import time

import pytest
from django.utils import timezone

from campaigns.batch import BatchState
from campaigns.choices import FailureClass, JobState, SubmissionState
from campaigns.execution import polling, stuck, submission
from campaigns.models import Job, Stage, StuckFlag, StuckKind, Submission
from campaigns.services import CampaignError
from tests.campaigns.exec_support import (
    DEMO_STAGES,
    all_final,
    assert_counters_match,
    demo_template,
    launch,
    run_until,
)

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def queued(exec_env, fake_backend, experiment, operator, settings):
    settings.OPOS_STUCK_QUEUED_S = 3600
    settings.OPOS_STUCK_HELD_S = 600
    settings.OPOS_STUCK_RUNNING_FACTOR = 3
    settings.OPOS_STUCK_STAGE_S = 6 * 3600
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    campaign, _ = launch(experiment, operator, events=40, per_job=10, template=template)
    submission.submit_ready()
    return campaign, list(Job.objects.order_by("index"))


@pytest.mark.django_db
def test_flags_with_reasons_and_resolution(queued, fake_backend):
    campaign, jobs = queued
    now = timezone.now()
    fake_backend.set(jobs[1:2], BatchState.HELD, reason="JobHeldAdmin")
    fake_backend.set(jobs[2:3], BatchState.RUNNING)
    polling.poll()
    Job.objects.filter(pk=jobs[0].pk).update(state_since=now - 2 * HOUR)  # queued 2 h
    Job.objects.filter(pk=jobs[1].pk).update(state_since=now - HOUR)  # held 1 h
    Job.objects.filter(pk=jobs[2].pk).update(started=now - HOUR)  # 60 s estimate, 1 h
    Stage.objects.filter(campaign=campaign).update(progress_at=now - 7 * HOUR)
    Submission.objects.update(submitted_at=now - 7 * HOUR)

    report = stuck.detect_stuck(now)

    flags = {(f.job_id, f.kind): f for f in StuckFlag.objects.open()}
    assert set(flags) == {
        (jobs[0].pk, StuckKind.QUEUED),
        (jobs[1].pk, StuckKind.HELD),
        (jobs[2].pk, StuckKind.RUNNING),
        (None, StuckKind.NO_PROGRESS),
    }
    assert report.raised == 4
    assert "queued for 2.0 h" in flags[(jobs[0].pk, StuckKind.QUEUED)].reason
    assert "over 3 x its walltime estimate of 60 s" in flags[(jobs[2].pk, StuckKind.RUNNING)].reason
    assert "finished for 7.0 h" in flags[(None, StuckKind.NO_PROGRESS)].reason
    assert stuck.detect_stuck(now).raised == 0  # one open flag per condition

    fake_backend.set(jobs[:1], BatchState.RUNNING)  # the queued one started
    polling.poll()
    report = stuck.detect_stuck(now)
    assert report.resolved == 1
    resolved = StuckFlag.objects.get(job=jobs[0], kind=StuckKind.QUEUED)
    assert resolved.resolved_at is not None


@pytest.mark.django_db
def test_unresolved_submission_is_flagged(queued, settings):
    settings.OPOS_SUBMISSION_GRACE_S = 60
    _campaign, _jobs = queued
    sub = Submission.objects.get()
    Submission.objects.filter(pk=sub.pk).update(
        state=SubmissionState.SUBMITTING, created=timezone.now() - HOUR, error="token in two parts"
    )

    stuck.detect_stuck()

    flag = StuckFlag.objects.get(kind=StuckKind.SUBMISSION)
    assert sub.token in flag.reason and "token in two parts" in flag.reason


@pytest.mark.django_db
def test_cancel_and_retry(queued, fake_backend, operator, liaison):
    campaign, jobs = queued
    Job.objects.filter(pk=jobs[0].pk).update(state_since=timezone.now() - 2 * HOUR)
    stuck.detect_stuck()
    with pytest.raises(CampaignError):
        stuck.cancel_and_retry(liaison, [jobs[0].pk])

    result = stuck.cancel_and_retry(operator, [jobs[0].pk], note="stuck in the queue")

    assert fake_backend.cancelled == [jobs[0].batch_id]
    old = Job.objects.get(pk=jobs[0].pk)
    assert (old.state, old.failure_class) == (JobState.CANCELLED, FailureClass.CANCELLED)
    assert "cancelled by op to retry: stuck in the queue" in old.failure_reason
    [retry] = Job.objects.filter(pk__in=result.retries)
    assert (retry.parent_id, retry.attempt, retry.state) == (old.pk, 2, JobState.READY)
    assert not StuckFlag.objects.open().filter(job=old).exists()
    assert_counters_match(campaign)
    submission.submit_ready()
    assert Job.objects.get(pk=retry.pk).state == JobState.QUEUED


SLEEPER = """\
import json, pathlib, sys, time
job = json.loads(pathlib.Path("job.json").read_text())
if job["attempt"] == 1:
    time.sleep(300)
out = pathlib.Path("output")
out.mkdir(exist_ok=True)
(out / "done.txt").write_text("ok")
"""


@pytest.mark.django_db(transaction=True)
def test_cancel_and_retry_kills_a_real_running_job(
    exec_env,
    experiment,
    operator,
    tmp_path,
):
    script = tmp_path / "sleep.py"
    script.write_text(SLEEPER)
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    campaign, _ = launch(experiment, operator, events=10, per_job=10, template=template)
    submission.submit_ready()
    deadline = time.monotonic() + 30
    while Job.objects.get().state != JobState.RUNNING:
        assert time.monotonic() < deadline
        polling.poll()
        time.sleep(0.2)
    stage = Stage.objects.get(campaign=campaign)

    result = stuck.cancel_and_retry(operator, stage=stage)

    assert len(result.cancelled) == len(result.retries) == 1
    run_until(lambda: all_final(stage__campaign=campaign), timeout=60)
    states = dict(Job.objects.values_list("attempt", "state"))
    assert states == {1: JobState.CANCELLED, 2: JobState.SUCCEEDED}
    assert_counters_match(campaign)

"""The poller's view of the jobs in flight, kept between polls: it reads again only the
jobs that changed lately, and a stale view never leads to a wrong write."""

import datetime as dt

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.batch import BatchState
from campaigns.choices import JobState
from campaigns.execution import polling, submission
from campaigns.execution.inflight import KNOWN
from campaigns.models import Job, Stage
from tests.campaigns.exec_support import (
    DEMO_STAGES,
    assert_counters_match,
    demo_template,
    launch,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(exec_env, fake_backend, experiment, operator, settings):
    settings.OPOS_POLL_FULL_READ_S = 3600
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    campaign, _request = launch(experiment, operator, events=60, per_job=10, template=template)
    submission.submit_ready()
    jobs = list(Job.objects.filter(stage__campaign=campaign).order_by("index"))
    assert [j.state for j in jobs] == [JobState.QUEUED] * 6
    return campaign, jobs


def job_reads(ctx):
    return [
        q["sql"]
        for q in ctx.captured_queries
        # The in-flight read itself: the controls sent in the same cycle join jobs too.
        if q["sql"].startswith("SELECT")
        and '"campaigns_job"."batch_id"' in q["sql"]
        and 'FROM "campaigns_job"' in q["sql"]
    ]


def test_after_the_first_poll_only_recent_changes_are_read(queued, fake_backend):
    campaign, jobs = queued
    polling.poll()
    assert KNOWN.full_reads == 1
    # Age every job's last change beyond the window: a steady production.
    Job.objects.update(state_since=timezone.now() - dt.timedelta(hours=1))
    fake_backend.set(jobs[:2], BatchState.RUNNING)

    with CaptureQueriesContext(connection) as ctx:
        report = polling.poll()

    assert KNOWN.full_reads == 1
    assert (report.polled, report.moved) == (6, 2)  # every job asked about, from the view
    (read,) = job_reads(ctx)
    assert '"state_since" >=' in read  # only what changed lately
    assert_counters_match(campaign)
    # The two moves are in the view: reported running again, nothing is written.
    with CaptureQueriesContext(connection) as ctx:
        assert polling.poll().moved == 0
    assert not [q for q in ctx.captured_queries if q["sql"].startswith("UPDATE")]


def test_jobs_submitted_after_the_view_was_built_are_polled(
    exec_env, fake_backend, experiment, operator, settings
):
    settings.OPOS_POLL_FULL_READ_S = 3600
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    launch(experiment, operator, events=30, per_job=10, template=template)
    submission.submit_ready()
    assert polling.poll().polled == 3
    campaign, _ = launch(experiment, operator, events=20, per_job=10, template=template)
    submission.submit_ready()
    later = list(Job.objects.filter(stage__campaign=campaign))
    fake_backend.set(later, BatchState.RUNNING)

    report = polling.poll()

    assert KNOWN.full_reads == 1
    assert (report.polled, report.moved) == (5, 2)
    assert_counters_match(campaign)


def test_a_job_that_left_flight_by_another_path_is_dropped_not_overwritten(queued, fake_backend):
    campaign, jobs = queued
    polling.poll()
    # Stuck detection cancels job 0 to retry it behind the view's back (and the batch
    # system, told to cancel, reports it cancelled).
    Job.objects.filter(pk=jobs[0].pk).update(state=JobState.CANCELLED)
    Stage.objects.filter(campaign=campaign).update(n_queued=5, n_cancelled=1)
    fake_backend.set(jobs[:1], BatchState.CANCELLED)

    report = polling.poll()

    assert report.finished == 0  # the compare-and-set found it cancelled already
    job = Job.objects.get(pk=jobs[0].pk)
    assert (job.state, job.outcome) == (JobState.CANCELLED, "")
    assert jobs[0].pk not in KNOWN.jobs["local"]
    assert_counters_match(campaign)


def test_a_change_the_view_cannot_see_is_read_at_the_next_full_read(queued, fake_backend, settings):
    """A job edited by hand (its state_since untouched) is seen by the periodic full read;
    until then the compare-and-set keeps the poller from writing over it."""
    campaign, jobs = queued
    polling.poll()
    old = timezone.now() - dt.timedelta(days=1)
    Job.objects.filter(pk=jobs[0].pk).update(state=JobState.HELD, state_since=old)
    Stage.objects.filter(campaign=campaign).update(n_queued=5, n_held=1)
    fake_backend.set(jobs[:1], BatchState.RUNNING)

    report = polling.poll()  # the view says queued: the write misses, the job is read again

    assert (report.moved, Job.objects.get(pk=jobs[0].pk).state) == (0, JobState.HELD)
    assert KNOWN.jobs["local"][jobs[0].pk].state == JobState.HELD
    assert polling.poll().moved == 1  # held -> running, from the refreshed view
    assert_counters_match(campaign)

    Job.objects.filter(pk=jobs[1].pk).update(state=JobState.HELD, state_since=old)
    Stage.objects.filter(campaign=campaign).update(
        n_queued=F("n_queued") - 1, n_held=F("n_held") + 1
    )
    fake_backend.set(jobs[1:2], BatchState.HELD)  # the batch system agrees: nothing to write
    settings.OPOS_POLL_FULL_READ_S = 0
    polling.poll()
    assert KNOWN.full_reads == 2
    assert KNOWN.jobs["local"][jobs[1].pk].state == JobState.HELD
    assert_counters_match(campaign)


def test_a_new_database_rebuilds_the_view(queued, fake_backend, settings):
    polling.poll()
    KNOWN.database = ("default", "another database")
    polling.poll()
    assert KNOWN.full_reads == 2

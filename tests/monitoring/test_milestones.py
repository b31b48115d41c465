"""Milestones: first job running, full speed, half and all events, as time since launch;
from the jobs' own start and end times, so short jobs between snapshots count."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.choices import CampaignState, JobState
from campaigns.execution.finalize import FinalizeReport, advance
from campaigns.models import Job, Stage
from campaigns.services import recount_stages
from monitoring.choices import MilestoneKind
from monitoring.models import Milestone, ProgressSnapshot
from monitoring.services import dashboards, record_snapshots
from monitoring.services import milestones as ms
from tests.campaigns.factories import GEN_SIM_RECO, workflow

from .builders import launch, planned_campaign, seed_shape, set_progress

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)


def test_derive_takes_the_first_state_past_each_threshold():
    def state(hours, running, done, started=True):
        return ms.State(T0 + dt.timedelta(hours=hours), started, running, done, 1000, slots=10)

    history = [
        state(0, 0, 0, started=False),
        state(1, 2, 0),
        state(2, 7, 100),
        state(3, 8, 400),  # 8 of 10 slots: full speed
        state(4, 10, 500),  # half
        state(5, 3, 1000),  # all
    ]
    first = ms.derive(reversed(history))  # order of the input does not matter
    assert first == {
        MilestoneKind.FIRST_RUNNING: T0 + dt.timedelta(hours=1),
        MilestoneKind.FULL_SPEED: T0 + dt.timedelta(hours=3),
        MilestoneKind.HALF_EVENTS: T0 + dt.timedelta(hours=4),
        MilestoneKind.ALL_EVENTS: T0 + dt.timedelta(hours=5),
    }


def test_requests_have_no_full_speed_and_small_campaigns_reach_it_with_their_jobs():
    request_level = ms.State(T0, True, 500, 0, 1000, slots=0)
    assert MilestoneKind.FULL_SPEED not in ms.reached(request_level)
    # A campaign of 5 jobs on 1000 slots is allotted 5: 4 running is full speed.
    small = ms.State(T0, True, 4, 0, 1000, slots=5)
    assert MilestoneKind.FULL_SPEED in ms.reached(small)


def test_the_seed_round_full_speed_by_day_two_half_done_after_two_and_a_half(experiment, operator):
    """Snapshots every 6 h of a round that ramps up to its 20 slots over two days."""
    campaign = planned_campaign(experiment, operator, events=10_000, per_job=100)
    campaign = launch(campaign, operator, at=T0)
    target = 10_000
    shape = dict(seed_shape(T0, target, hours=4 * 24, step_h=6))
    for at, done in sorted(shape.items()):
        days = (at - T0) / dt.timedelta(days=1)
        running = round(20 * min(days / 2, 1.0)) if done < target else 0
        set_progress(campaign, done / target, running=running)
        record_snapshots(now=at)
    views = {m.kind: m for m in ms.views(ms.load(campaign), campaign.launched_at, True)}
    day = dt.timedelta(days=1)
    assert views[MilestoneKind.FIRST_RUNNING].since_launch == dt.timedelta(hours=6)
    # 80% of 20 slots is 16 running, reached at day 1.6: the snapshot of day 1.75.
    assert views[MilestoneKind.FULL_SPEED].since_launch <= 2 * day
    assert views[MilestoneKind.FULL_SPEED].since_launch == dt.timedelta(hours=42)
    assert views[MilestoneKind.HALF_EVENTS].since_launch == 2.5 * day
    assert views[MilestoneKind.ALL_EVENTS].since_launch == 4 * day
    # The request's milestones too (no full speed at request level).
    request_kinds = set(
        Milestone.objects.filter(campaign=campaign, request__isnull=False).values_list(
            "kind", flat=True
        )
    )
    assert request_kinds == {
        MilestoneKind.FIRST_RUNNING,
        MilestoneKind.HALF_EVENTS,
        MilestoneKind.ALL_EVENTS,
    }


def test_a_milestone_is_recorded_once(experiment, operator):
    campaign = launch(planned_campaign(experiment, operator), operator, at=T0)
    set_progress(campaign, 0.6, running=2)
    record_snapshots(now=T0 + dt.timedelta(hours=1))
    record_snapshots(now=T0 + dt.timedelta(hours=2))
    half = Milestone.objects.get(campaign=campaign, request=None, kind=MilestoneKind.HALF_EVENTS)
    assert half.reached_at == T0 + dt.timedelta(hours=1)
    assert Milestone.objects.filter(campaign=campaign, kind=MilestoneKind.HALF_EVENTS).count() == 2


def short_jobs(experiment, operator, launched):
    """A campaign of 20 jobs of 5 seconds, as execution leaves them (exact start and end
    times from the wrapper): four at first, then sixteen together; no snapshot taken."""

    template = workflow(experiment, stages=GEN_SIM_RECO[:1])
    campaign = planned_campaign(experiment, operator, events=2000, per_job=100, template=template)
    campaign = launch(campaign, operator, at=launched)
    jobs = list(Job.objects.filter(stage__campaign=campaign).order_by("index"))
    second = dt.timedelta(seconds=1)
    for job in jobs:
        if job.index < 4:
            job.started = launched + 10 * second + job.index * second / 10
        else:
            job.started = launched + 20 * second + (job.index - 4) * second / 10
        job.finished = job.started + 5 * second
        job.state = JobState.SUCCEEDED
    Job.objects.bulk_update(jobs, ["state", "started", "finished"])
    stage = Stage.objects.get(campaign=campaign)
    recount_stages([stage.pk])
    Stage.objects.filter(pk=stage.pk).update(events_done=2000)
    return campaign, jobs


def test_milestones_of_a_campaign_of_short_jobs_come_from_the_jobs_without_snapshots(
    experiment, operator, django_assert_max_num_queries
):

    launched = T0
    campaign, jobs = short_jobs(experiment, operator, launched)
    advance(FinalizeReport())
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.COMPLETED
    assert not ProgressSnapshot.objects.exists()

    detail = dashboards.campaign_detail(campaign, now=launched + dt.timedelta(hours=1))
    at = detail.milestone_times
    by_index = {j.index: j for j in jobs}
    assert at[MilestoneKind.FIRST_RUNNING] == by_index[0].started
    # 20 jobs on 20 slots: 16 running is full speed, when the 16th of the second wave started
    # (the first four had ended by then).
    assert at[MilestoneKind.FULL_SPEED] == by_index[19].started
    # 1000 of 2000 events: the tenth job to end; all: the last.
    ends = sorted(j.finished for j in jobs)
    assert at[MilestoneKind.HALF_EVENTS] == ends[9]
    assert at[MilestoneKind.ALL_EVENTS] == ends[-1]
    # Stored once: the next page reads them (no more job queries than a campaign's page).
    stored = dict(
        Milestone.objects.filter(campaign=campaign, request=None).values_list("kind", "reached_at")
    )
    assert stored == at
    request = campaign.links.get().request
    request_at = dashboards.request_detail(request).milestone_times
    assert request_at[MilestoneKind.ALL_EVENTS] == ends[-1]
    assert MilestoneKind.FULL_SPEED not in request_at
    with django_assert_max_num_queries(12):
        again = dashboards.campaign_detail(campaign, now=launched + dt.timedelta(hours=2))
    assert again.milestone_times == at


def test_the_recorder_takes_full_speed_from_the_jobs_between_two_snapshots(experiment, operator):
    """A snapshot 40 s after the launch sees nothing running: the jobs say when the
    campaign ran at full speed and when it started."""
    launched = T0
    campaign, jobs = short_jobs(experiment, operator, launched)
    record_snapshots(now=launched + dt.timedelta(seconds=40))
    stored = dict(
        Milestone.objects.filter(campaign=campaign, request=None).values_list("kind", "reached_at")
    )
    by_index = {j.index: j for j in jobs}
    assert stored[MilestoneKind.FIRST_RUNNING] == by_index[0].started
    assert stored[MilestoneKind.FULL_SPEED] == by_index[19].started
    assert stored[MilestoneKind.ALL_EVENTS] == max(j.finished for j in jobs)


def test_a_campaign_that_never_ran_enough_jobs_at_once_has_no_full_speed(experiment, operator):
    """Jobs one after the other: full speed is never reached, whatever the snapshots."""

    launched = T0
    campaign, jobs = short_jobs(experiment, operator, launched)
    for n, job in enumerate(jobs):  # one at a time
        job.started = launched + dt.timedelta(seconds=10 * n)
        job.finished = job.started + dt.timedelta(seconds=5)
    Job.objects.bulk_update(jobs, ["started", "finished"])
    assert ms.running_reached(campaign.pk, 2) is None
    assert ms.running_reached(campaign.pk, 1) == jobs[0].started
    record_snapshots(now=launched + dt.timedelta(hours=1))
    kinds = set(
        Milestone.objects.filter(campaign=campaign, request=None).values_list("kind", flat=True)
    )
    assert MilestoneKind.FULL_SPEED not in kinds and MilestoneKind.ALL_EVENTS in kinds


def test_full_speed_is_looked_for_only_after_a_job_finished(experiment, operator):
    """The sweep over the jobs runs in the cycle after a job of the campaign finished,
    not in every cycle of a campaign that has not reached full speed."""
    launched = T0
    campaign, jobs = short_jobs(experiment, operator, launched)
    for n, job in enumerate(jobs):  # one at a time: full speed never comes
        job.started = launched + dt.timedelta(seconds=10 * n)
        job.finished = job.started + dt.timedelta(seconds=5)
    Job.objects.bulk_update(jobs, ["started", "finished"])
    stage = Stage.objects.get(campaign=campaign)
    Stage.objects.filter(pk=stage.pk).update(progress_at=launched + dt.timedelta(seconds=195))

    def sweeps(at) -> int:
        with CaptureQueriesContext(connection) as queries:
            record_snapshots(now=at)
        return sum("WITH moves AS" in q["sql"] for q in queries.captured_queries)

    assert sweeps(launched + dt.timedelta(minutes=5)) == 1  # the first snapshot looks
    assert sweeps(launched + dt.timedelta(minutes=6)) == 0  # nothing finished since
    Stage.objects.filter(pk=stage.pk).update(progress_at=launched + dt.timedelta(minutes=6.5))
    assert sweeps(launched + dt.timedelta(minutes=7)) == 1
    assert not Milestone.objects.filter(campaign=campaign, kind=MilestoneKind.FULL_SPEED).exists()


def test_a_page_of_a_closed_campaign_sweeps_once_at_most(experiment, operator):
    """A closed campaign that never ran at full speed: once the recorder took its final
    look, its pages do not sweep the jobs again."""
    launched = T0
    campaign, jobs = short_jobs(experiment, operator, launched)
    for n, job in enumerate(jobs):
        job.started = launched + dt.timedelta(seconds=10 * n)
        job.finished = job.started + dt.timedelta(seconds=5)
    Job.objects.bulk_update(jobs, ["started", "finished"])
    advance(FinalizeReport())
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.COMPLETED

    def sweeps() -> int:
        with CaptureQueriesContext(connection) as queries:
            dashboards.campaign_detail(campaign)
        return sum("WITH moves AS" in q["sql"] for q in queries.captured_queries)

    assert sweeps() == 1  # no final look yet: the page looks
    record_snapshots()  # the recorder's final snapshot, and its look
    assert ProgressSnapshot.objects.filter(campaign=campaign).exists()
    assert sweeps() == 0

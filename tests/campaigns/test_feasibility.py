"""Deadline feasibility: projected finish at the current load, labelled against the deadline."""

import datetime as dt

import pytest
from django.utils import timezone

from campaigns.choices import Feasibility, JobState
from campaigns.models import Job, Stage
from campaigns.scheduler import CampaignLoad, SchedulerInput, StageLoad, feasibility, project
from campaigns.services import (
    campaign_action,
    forecast_campaigns,
    forecast_request,
    release_dependents,
    schedule_requests,
)
from requests_app.choices import RequestState
from tests.campaigns.factories import CampaignFactory, approved_request, workflow

H = 3600.0


# --- labels --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "label"),
    [
        (50 * H, Feasibility.ON_TRACK),
        (89 * H, Feasibility.ON_TRACK),
        (91 * H, Feasibility.AT_RISK),  # within the last 10% of the 100 hours left
        (100 * H, Feasibility.AT_RISK),
        (101 * H, Feasibility.LATE),
        (None, Feasibility.LATE),  # never, at the current limits
    ],
)
def test_labels(finish, label):
    assert feasibility(now=0, deadline=100 * H, finish=finish) == label


def test_done_and_past_deadlines():
    assert feasibility(0, 100 * H, None, done=True) == Feasibility.DONE
    assert feasibility(now=200 * H, deadline=100 * H, finish=250 * H) == Feasibility.LATE


# --- the fluid projection -------------------------------------------------------------------


def load(cid, jobs, deadline_h, walltime=H, request_id=None, request_deadline=None, **kw):
    return StageLoad(
        stage_id=cid * 100 + (request_id or 0),
        campaign_id=cid,
        position=0,
        ready=jobs,
        planned=0,
        in_flight=0,
        walltime_s=walltime,
        request_id=request_id or cid,
        request_deadline=request_deadline or deadline_h * H,
    )


def campaign(cid, stages, deadline_h, **kw):
    return CampaignLoad(
        campaign_id=cid,
        experiment_id=1,
        backend="slurm",
        state="active",
        priority=1,
        deadline=deadline_h * H,
        stages=tuple(stages),
        **kw,
    )


def run(campaigns, capacity=10):
    return project(SchedulerInput(0.0, {"slurm": capacity}, {1: 1000}, campaigns))


def test_one_campaign_uses_its_whole_share():
    result = run([campaign(1, [load(1, 100, 48)], 48)])
    assert result[1].finish == pytest.approx(10 * H)


def test_the_throttle_limits_the_projection():
    result = run([campaign(1, [load(1, 100, 48)], 48, throttle=4)])
    assert result[1].finish == pytest.approx(25 * H)


def test_capacity_passes_on_when_a_campaign_finishes():
    urgent = campaign(1, [load(1, 90, 20)], 20)
    later = campaign(2, [load(2, 50, 100)], 100)
    result = run([urgent, later])
    # The urgent one holds nine slots (the tenth is the later one's floor) for ten hours,
    # then the later one has all ten for its remaining 40 job-hours.
    assert result[1].finish == pytest.approx(10 * H)
    assert result[2].finish == pytest.approx(14 * H)


def test_requests_finish_in_deadline_order():
    c = campaign(
        1,
        [
            load(1, 10, 100, request_id=7, request_deadline=90 * H),
            load(1, 10, 100, request_id=3, request_deadline=5 * H),
        ],
        100,
    )
    result = run([c], capacity=5)
    assert result[1].requests == {3: pytest.approx(2 * H), 7: pytest.approx(4 * H)}


def test_no_capacity_means_never():
    result = project(
        SchedulerInput(0.0, {"slurm": 10}, {1: 0}, [campaign(1, [load(1, 5, 10)], 10)])
    )
    assert result[1].finish is None


# --- services ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_approved_request_would_finish_on_track_on_an_idle_system(experiment, settings):
    settings.OPOS_BACKEND_CAPACITY = {"local": 4}
    request = approved_request(experiment, events=1000, per_job=100, days=30)
    forecast = forecast_request(request)
    # 10 x 600 s + 10 x 1200 s + 5 x 900 s on four slots.
    expected = timezone.now().timestamp() + 22500 / 4
    assert forecast.finish.timestamp() == pytest.approx(expected, abs=60)
    assert forecast.status == Feasibility.ON_TRACK
    assert forecast.mode == "if_scheduled"
    assert forecast.message.startswith("With the current load this would finish around")
    assert forecast.remaining_jobs == 25


@pytest.mark.django_db
def test_the_current_load_can_make_a_request_late(experiment, operator, settings):
    settings.OPOS_BACKEND_CAPACITY = {"local": 4}
    template = workflow(experiment)
    # Due in four days with 2.6 days of work at its full share: less slack than the
    # newcomer's, so it is served first.
    busy = CampaignFactory(
        experiment=experiment, priority="critical", deadline=timezone.localdate() + dt.timedelta(4)
    )
    big = approved_request(experiment, template, events=40_000, per_job=100, days=10)
    schedule_requests(busy, [big.pk], operator)
    campaign_action(busy, "launch", operator)

    # 517,500 job-seconds (1.5 days at the full share): one slot (the starvation floor)
    # while the busy campaign's 900,000 run on the other three (3.47 days), then all
    # four: about 4.1 days, due in at most 4. Both deadlines end at a midnight, so the
    # time of day shifts both slacks alike: the busy campaign keeps the least slack
    # (its 2.4 days against 2.5, less the hours gone today) whenever the test runs.
    newcomer = approved_request(experiment, template, events=23_000, per_job=100, days=3)
    forecast = forecast_request(newcomer)
    assert forecast.status == Feasibility.LATE
    assert "(late; deadline" in forecast.message

    mine = forecast_campaigns()[busy.pk]
    assert mine.mode == "running"
    assert mine.status == Feasibility.ON_TRACK
    assert mine.requests[big.pk].status == Feasibility.ON_TRACK
    assert mine.remaining_jobs == 1000


@pytest.mark.django_db
def test_a_scheduled_request_is_forecast_in_its_campaign(experiment, operator):
    campaign = CampaignFactory(experiment=experiment)
    request = approved_request(experiment)
    schedule_requests(campaign, [request.pk], operator)
    request.refresh_from_db()
    forecast = forecast_request(request)
    assert forecast.mode == "if_launched"
    assert forecast.message.startswith("If launched now, it would finish around")
    campaign_action(campaign, "launch", operator)
    assert forecast_request(request).message.startswith("Projected to finish around")


@pytest.mark.django_db
def test_finished_requests_need_no_forecast(experiment):
    request = approved_request(experiment, state=RequestState.COMPLETED)
    assert forecast_request(request).status == Feasibility.DONE
    request = approved_request(experiment, state=RequestState.REJECTED)
    assert forecast_request(request).status == Feasibility.UNKNOWN


@pytest.mark.django_db
def test_the_observed_median_replaces_the_template_estimate(experiment, operator):
    campaign = CampaignFactory(experiment=experiment)
    request = approved_request(experiment, events=500, per_job=100)
    schedule_requests(campaign, [request.pk], operator)
    gen = Stage.objects.get(campaign=campaign, position=0)
    assert gen.walltime_estimate_s == 600
    jobs = list(gen.jobs.order_by("index"))
    for job, seconds in zip(jobs[:3], (100, 300, 200), strict=True):
        job.state, job.walltime_observed_s, job.finished = (
            JobState.SUCCEEDED,
            seconds,
            timezone.now(),
        )
    Job.objects.bulk_update(jobs[:3], ["state", "walltime_observed_s", "finished"])

    release_dependents([j.pk for j in jobs[:3]])

    gen.refresh_from_db()
    assert gen.walltime_median_s == 200
    assert gen.walltime_estimate_s == 200

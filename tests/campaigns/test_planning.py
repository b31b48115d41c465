"""plan_cycle loads the scheduler's input with a few aggregates; work streams through stages."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.choices import JobState, WaitReason
from campaigns.models import Job, Stage
from campaigns.services import (
    campaign_action,
    plan_cycle,
    recount_stages,
    release_dependents,
    schedule_requests,
)
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest
from tests.campaigns.factories import CampaignFactory, approved_request, workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def active(experiment, operator):
    campaign = CampaignFactory(experiment=experiment, backend="slurm")
    request = approved_request(experiment, events=1000, per_job=100)  # 10 + 10 + 5 jobs
    schedule_requests(campaign, [request.pk], operator)
    return campaign_action(campaign, "launch", operator)


def stages_of(campaign):
    return list(Stage.objects.filter(campaign=campaign).order_by("position"))


def succeed(stage, *indexes):
    jobs = list(Job.objects.filter(stage=stage, index__in=indexes))
    Job.objects.filter(pk__in=[j.pk for j in jobs]).update(state=JobState.SUCCEEDED)
    return [j.pk for j in jobs]


def test_plan_cycle_decides_from_the_database(active, settings):
    settings.OPOS_BACKEND_CAPACITY = {"slurm": 6}
    gen, sim, _reco = stages_of(active)
    plan = plan_cycle()
    assert plan.submissions() == [(gen.pk, 6)]
    assert plan.decision.stages[gen.pk].reason == WaitReason.CAPACITY
    assert plan.decision.stages[sim.pk].reason == WaitReason.DEPENDENCY
    assert plan.inputs.stages[sim.pk].name == "simulation"


def test_jobs_in_flight_hold_capacity_and_quota(active, experiment, settings):
    settings.OPOS_BACKEND_CAPACITY = {"slurm": 6}
    gen = stages_of(active)[0]
    Job.objects.filter(stage=gen, index__in=[0, 1, 2, 3]).update(
        state=JobState.RUNNING, backend="slurm"
    )
    recount_stages([gen.pk])  # the scheduler reads the counters execution keeps
    assert plan_cycle().submissions() == [(gen.pk, 2)]
    experiment.job_quota = 5
    experiment.save()
    plan = plan_cycle()
    assert plan.submissions() == [(gen.pk, 1)]
    assert plan.decision.stages[gen.pk].reason == WaitReason.QUOTA


def test_requests_on_hold_submit_nothing(active, settings):
    settings.OPOS_BACKEND_CAPACITY = {"slurm": 6}
    gen = stages_of(active)[0]
    ProductionRequest.objects.filter(pk=gen.request_id).update(state=RequestState.ON_HOLD)
    plan = plan_cycle()
    assert plan.submissions() == []
    assert plan.decision.stages[gen.pk].reason == WaitReason.ON_HOLD


def test_plan_cycle_runs_a_fixed_number_of_queries(experiment, operator):
    template = workflow(experiment)
    counts = []
    for n in (1, 6):
        for _ in range(n):
            c = CampaignFactory(experiment=experiment)
            schedule_requests(
                c, [approved_request(experiment, template, events=2000 * n).pk], operator
            )
            campaign_action(c, "launch", operator)
        with CaptureQueriesContext(connection) as ctx:
            plan_cycle()
        counts.append(len(ctx.captured_queries))
    assert counts == [5, 5]  # + the partitions and their quotas


def test_jobs_stream_through_the_stages(active):
    gen, sim, reco = stages_of(active)

    released = release_dependents(succeed(gen, 3))

    assert released == {sim.pk: 1}
    assert Job.objects.get(stage=sim, index=3).state == JobState.READY
    # Reconstruction reads two simulation outputs per job: one is not enough.
    assert release_dependents(succeed(sim, 2)) == {}
    assert release_dependents(succeed(sim, 3)) == {reco.pk: 1}
    assert Job.objects.get(stage=reco, index=1).state == JobState.READY
    sim.refresh_from_db()
    assert (sim.n_planned, sim.n_ready) == (9, 1)


def test_release_is_harmless_when_repeated(active):
    gen, sim, _reco = stages_of(active)
    ids = succeed(gen, 0, 1, 2)
    assert release_dependents(ids) == {sim.pk: 3}
    assert release_dependents(ids) == {}
    sim.refresh_from_db()
    assert (sim.n_planned, sim.n_ready) == (7, 3)


def test_a_retry_that_succeeded_releases_its_dependents(active):
    gen, sim, _reco = stages_of(active)
    first = Job.objects.get(stage=gen, index=5)
    Job.objects.filter(pk=first.pk).update(state=JobState.FAILED)
    retry = Job.objects.create(
        stage=gen, index=5, attempt=2, parent=first, state=JobState.SUCCEEDED, events=100
    )
    assert release_dependents([retry.pk]) == {sim.pk: 1}


def test_the_last_smaller_group_is_released_when_complete(experiment, operator):
    campaign = CampaignFactory(experiment=experiment)
    request = approved_request(experiment, events=500, per_job=100)  # 5 sim jobs, 3 reco
    schedule_requests(campaign, [request.pk], operator)
    _gen, sim, reco = stages_of(campaign)
    assert release_dependents(succeed(sim, 4)) == {reco.pk: 1}  # reco job 2 reads sim 4 only
    assert Job.objects.get(stage=reco, index=2).input_count == 1


def test_recount_rebuilds_the_counters(active):
    gen = stages_of(active)[0]
    Job.objects.filter(stage=gen, index__lt=4).update(state=JobState.RUNNING)
    Stage.objects.filter(pk=gen.pk).update(n_ready=999)
    recount_stages([gen.pk])
    gen.refresh_from_db()
    assert gen.counts() == {
        "planned": 0,
        "ready": 6,
        "queued": 0,
        "running": 4,
        "held": 0,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
        "lost": 0,
    }

"""Scheduling requests expands samples into stages and planned jobs, in bulk, all or nothing."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.choices import CampaignEventKind, JobState
from campaigns.models import CampaignEvent, CampaignRequest, Dataset, Job, OutputFile, Stage
from campaigns.services import CampaignError, schedule_requests
from experiments.models import SplitRule
from experiments.models.visibility import is_operator
from requests_app.choices import RequestState
from requests_app.models import Transition
from tests.campaigns.factories import (
    CampaignFactory,
    approved_code,
    approved_request,
    workflow,
)
from tests.factories import ExperimentFactory, ProductionCodeFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(experiment, operator):
    return CampaignFactory(experiment=experiment, name="MCC5.0", created_by=operator)


def jobs_of(stage):
    return list(
        stage.jobs.order_by("index").values_list(
            "events_first", "events", "input_first", "input_count", "state"
        )
    )


def test_events_split_with_a_smaller_last_job_and_files_grouping(campaign, operator, experiment):
    request = approved_request(experiment, events=1050, per_job=100)

    result = schedule_requests(campaign, [request.pk], operator, note="first round")

    assert (result.stages, result.jobs) == (3, 11 + 11 + 6)
    gen, sim, reco = Stage.objects.filter(campaign=campaign).order_by("position")
    assert [s.jobs_total for s in (gen, sim, reco)] == [11, 11, 6]
    gen_jobs = jobs_of(gen)
    assert gen_jobs[0] == (0, 100, None, 0, JobState.READY)
    assert gen_jobs[-1] == (1000, 50, None, 0, JobState.READY)  # the remainder
    assert sum(e for _f, e, *_ in gen_jobs) == 1050
    # Simulation: one generation output per job, waiting for it.
    assert jobs_of(sim)[3] == (300, 100, 3, 1, JobState.PLANNED)
    # Reconstruction: two simulation outputs per job; the last reads one.
    reco_jobs = jobs_of(reco)
    assert reco_jobs[0] == (0, 200, 0, 2, JobState.PLANNED)
    assert reco_jobs[-1] == (1000, 50, 10, 1, JobState.PLANNED)
    assert (gen.n_ready, gen.n_planned, sim.n_ready, sim.n_planned) == (11, 0, 0, 11)
    assert sim.input_stage == gen and reco.input_stage == sim
    # The request moved through the intake service, with a record.
    request.refresh_from_db()
    assert request.state == RequestState.SCHEDULED
    assert Transition.objects.filter(request=request, action="schedule").count() == 1
    assert CampaignRequest.objects.get(request=request).campaign == campaign
    event = CampaignEvent.objects.get(campaign=campaign, kind=CampaignEventKind.REQUEST_ADDED)
    assert event.actor == operator and event.reason == "first round"
    # One output dataset per stage: the last stage's is the sample's output dataset.
    sample = request.samples.get()
    assert reco.output_dataset.name == sample.output_dataset
    assert gen.output_dataset.name == f"{sample.output_dataset}.generation"
    assert Dataset.objects.filter(campaign=campaign).count() == 3


def test_exact_split_has_no_remainder(campaign, operator, experiment):
    request = approved_request(experiment, events=1000, per_job=250)
    schedule_requests(campaign, [request.pk], operator)
    gen = Stage.objects.get(campaign=campaign, position=0)
    assert [e for _f, e, *_ in jobs_of(gen)] == [250, 250, 250, 250]


def test_input_dataset_split_by_files_snapshots_the_file_names(campaign, operator, experiment):
    template = workflow(experiment, stages=[("reprocess", SplitRule.FILES, 2, 300)])
    dataset = Dataset.objects.create(experiment=experiment, name="dune:raw:run1")
    for n in range(5):
        OutputFile.objects.create(
            dataset=dataset, name=f"raw{n}.root", size=10, checksum="0" * 64, events=100
        )
    request = approved_request(experiment, template, input_dataset="dune:raw:run1")

    schedule_requests(campaign, [request.pk], operator)

    stage = Stage.objects.get(campaign=campaign)
    assert stage.input_dataset == dataset
    rows = list(stage.jobs.order_by("index").values_list("input_files", "events", "state"))
    assert rows == [
        (["raw0.root", "raw1.root"], 200, JobState.READY),
        (["raw2.root", "raw3.root"], 200, JobState.READY),
        (["raw4.root"], 100, JobState.READY),
    ]


def test_several_requests_and_samples_in_one_call(campaign, operator, experiment):
    template = workflow(experiment)
    first = approved_request(experiment, template, samples=2)
    second = approved_request(experiment, template)
    result = schedule_requests(campaign, [first.pk, second.pk], operator)
    assert result.stages == 9
    assert CampaignRequest.objects.filter(campaign=campaign).count() == 2


def test_number_of_queries_does_not_grow_with_jobs(operator, experiment, settings):
    settings.OPOS_EXPANSION_BATCH = 10_000
    template = workflow(experiment)
    is_operator(operator)  # the role is looked up once per user object; keep it out
    counts = []
    for events in (300, 300_000):  # 3 + 3 + 2 jobs, then 3000 + 3000 + 1500
        campaign = CampaignFactory(experiment=experiment)
        request = approved_request(experiment, template, events=events, per_job=100)
        with CaptureQueriesContext(connection) as ctx:
            result = schedule_requests(campaign, [request.pk], operator)
        counts.append((len(ctx.captured_queries), result.jobs))
    assert counts[1][1] == 7500
    assert counts[0][0] == counts[1][0]


def test_large_expansion_takes_a_few_statements(operator, experiment, settings):
    settings.OPOS_EXPANSION_BATCH = 1000
    campaign = CampaignFactory(experiment=experiment)
    request = approved_request(experiment, events=500_000, per_job=100)
    with CaptureQueriesContext(connection) as ctx:
        result = schedule_requests(campaign, [request.pk], operator)
    assert result.jobs == 5000 + 5000 + 2500
    # 12,500 rows in batches of 1,000 (COPY on PostgreSQL, which is not even logged).
    assert len(ctx.captured_queries) < 50
    jobs = Job.objects.filter(stage__campaign=campaign)
    assert jobs.count() == 12_500
    assert jobs.filter(state=JobState.READY).count() == 5000
    assert jobs.filter(attempt=1, backend="", batch_id="", submission=None).count() == 12_500


def test_editing_the_template_later_never_changes_the_plan(campaign, operator, experiment):
    template = workflow(experiment)
    request = approved_request(experiment, template, parameters={"seed": 7})
    schedule_requests(campaign, [request.pk], operator)
    gen = Stage.objects.get(campaign=campaign, position=0)
    before = (gen.code_id, gen.code_sha256, gen.parameters, gen.walltime_s, gen.memory_mb)

    st = template.stages.get(position=0)
    st.code = approved_code(experiment, name="other-generator")
    st.parameters = {"seed": {"type": "int", "default": 99}}
    st.walltime_s, st.memory_mb = 99999, 64000
    st.save()
    code = gen.code
    code.sha256 = "f" * 64
    code.save()

    gen.refresh_from_db()
    assert (gen.code_id, gen.code_sha256, gen.parameters, gen.walltime_s, gen.memory_mb) == before
    assert gen.parameters == {"seed": 7}
    assert gen.code_sha256 != "f" * 64


# --- refusals: each names the field, and nothing is half-planned ------------------------


def assert_nothing_planned(campaign, *requests):
    assert not Stage.objects.filter(campaign=campaign).exists()
    assert not Job.objects.filter(stage__campaign=campaign).exists()
    assert not CampaignRequest.objects.filter(campaign=campaign).exists()
    assert not Dataset.objects.filter(campaign=campaign).exists()
    for request in requests:
        request.refresh_from_db()
        assert request.state == RequestState.APPROVED


def refused(campaign, ids, operator):
    with pytest.raises(CampaignError) as info:
        schedule_requests(campaign, ids, operator)
    return info.value


def test_refuses_requests_not_approved(campaign, operator, experiment):
    good = approved_request(experiment)
    draft = approved_request(experiment, state=RequestState.SUBMITTED)
    error = refused(campaign, [good.pk, draft.pk], operator)
    assert error.kind == "conflict"
    assert any(draft.number in r and "only approved" in r for r in error.reasons)
    assert_nothing_planned(campaign, good)


def test_refuses_requests_of_another_experiment(campaign, operator):
    other = ExperimentFactory(slug="sbnd")
    request = approved_request(other)
    error = refused(campaign, [request.pk], operator)
    assert error.kind == "invalid"
    assert error.reasons == [f"requests: {request.number} belongs to another experiment"]
    assert_nothing_planned(campaign, request)


def test_refuses_past_deadlines(campaign, operator, experiment):
    request = approved_request(experiment, days=-1)
    error = refused(campaign, [request.pk], operator)
    assert "deadline" in error.reasons[0] and "in the past" in error.reasons[0]
    assert_nothing_planned(campaign, request)


def test_refuses_a_campaign_whose_deadline_passed(campaign, operator, experiment):
    request = approved_request(experiment)
    campaign.deadline = timezone.localdate() - dt.timedelta(days=1)
    campaign.save()
    error = refused(campaign, [request.pk], operator)
    assert error.reasons[0].startswith("deadline: the campaign's deadline")


def test_refuses_unknown_request_ids(campaign, operator):
    error = refused(campaign, [987654], operator)
    assert error.reasons == ["requests: no request with id 987654"]
    error = refused(campaign, ["x"], operator)
    assert error.reasons == ["requests: 'x' is not a request id"]
    error = refused(campaign, [], operator)
    assert error.reasons == ["requests: give at least one request id"]


def test_refuses_templates_whose_stages_form_a_cycle(campaign, operator, experiment):
    template = workflow(experiment)
    gen = template.stages.get(position=0)
    gen.input_stage = template.stages.get(position=2)
    gen.save()
    request = approved_request(experiment, template)
    error = refused(campaign, [request.pk], operator)
    assert any(
        "input stages form a cycle: generation -> simulation -> reconstruction -> generation" in r
        or "cycle" in r
        for r in error.reasons
    )
    assert_nothing_planned(campaign, request)


def test_refuses_code_of_another_experiment_or_not_approved(campaign, operator, experiment):
    template = workflow(experiment)
    sim = template.stages.get(position=1)
    sim.code = ProductionCodeFactory(experiment=ExperimentFactory(slug="sbnd"), name="foreign")
    sim.save()
    reco = template.stages.get(position=2)
    reco.code.approved = False
    reco.code.save()
    request = approved_request(experiment, template)
    error = refused(campaign, [request.pk], operator)
    text = "\n".join(error.reasons)
    assert "stage simulation: code foreign 1.0 is not registered for dune" in text
    assert "is not approved" in text
    assert f"{request.number}/" in text  # names the sample
    assert_nothing_planned(campaign, request)


def test_refuses_code_owned_by_unauthorised_accounts(campaign, operator, experiment):
    template = workflow(experiment)
    code = template.stages.get(position=0).code
    code.owners.add(operator)
    request = approved_request(experiment, template)
    error = refused(campaign, [request.pk], operator)
    assert any("owned by accounts not authorised: op" in r for r in error.reasons)


def test_refuses_too_many_jobs(campaign, operator, experiment, settings):
    settings.OPOS_MAX_JOBS_PER_SAMPLE = 20
    request = approved_request(experiment, events=1000, per_job=100)  # 10 + 10 + 5
    error = refused(campaign, [request.pk], operator)
    assert error.kind == "invalid"
    assert "events_per_job" in error.reasons[0] and "25 jobs" in error.reasons[0]
    assert "limit of 20" in error.reasons[0]
    assert_nothing_planned(campaign, request)


def test_refuses_an_empty_or_unknown_input_dataset(campaign, operator, experiment):
    template = workflow(experiment, stages=[("reprocess", SplitRule.FILES, 2, 300)])
    Dataset.objects.create(experiment=experiment, name="dune:raw:empty")
    empty = approved_request(experiment, template, input_dataset="dune:raw:empty")
    unknown = approved_request(experiment, template, input_dataset="dune:raw:nowhere")
    error = refused(campaign, [empty.pk, unknown.pk], operator)
    text = "\n".join(error.reasons)
    assert (
        "input_dataset: dune:raw:empty has no files, stage reprocess would make zero jobs" in text
    )
    assert "input_dataset: dune:raw:nowhere is not in the catalogue of dune" in text
    assert_nothing_planned(campaign, empty, unknown)


def test_refuses_a_files_split_with_nothing_to_read(campaign, operator, experiment):
    template = workflow(experiment, stages=[("reprocess", SplitRule.FILES, 2, 300)])
    request = approved_request(experiment, template)
    error = refused(campaign, [request.pk], operator)
    assert "splits by files but reads no earlier stage" in error.reasons[0]


def test_refuses_output_dataset_names_already_in_the_catalogue(campaign, operator, experiment):
    request = approved_request(experiment)
    name = request.samples.get().output_dataset
    Dataset.objects.create(experiment=experiment, name=name)
    error = refused(campaign, [request.pk], operator)
    assert error.reasons == [
        f"{request.number}/{request.samples.get().name}: output_dataset: {name} already exists "
        "in the catalogue; choose another name"
    ]


def test_refuses_a_request_already_in_a_campaign(campaign, operator, experiment):
    request = approved_request(experiment)
    schedule_requests(campaign, [request.pk], operator)
    other = CampaignFactory(experiment=experiment)
    error = refused(other, [request.pk], operator)
    assert error.kind == "conflict"


def test_only_operators_schedule(campaign, liaison, experiment):
    request = approved_request(experiment)
    with pytest.raises(CampaignError) as info:
        schedule_requests(campaign, [request.pk], liaison)
    assert info.value.kind == "forbidden"
    assert_nothing_planned(campaign, request)


def test_closed_campaigns_take_no_requests(campaign, operator, experiment):
    request = approved_request(experiment)
    campaign.state = "cancelled"
    campaign.save()
    error = refused(campaign, [request.pk], operator)
    assert error.kind == "conflict"

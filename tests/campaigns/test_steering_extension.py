"""Extending a running Monte Carlo request (filed, approved, jobs appended to the plan) and
cloning a request into a new draft."""

import pytest
from django.core.exceptions import ValidationError

from campaigns.choices import CampaignEventKind, ExtensionState, JobState
from campaigns.models import CampaignEvent, Extension, Job, Stage
from campaigns.services import CampaignError, forecast_request, recount_stages
from campaigns.services.extension import approve_extension, file_extension, reject_extension
from common.errors import PermissionDenied
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest, Transition
from requests_app.services.cloning import clone_request
from tests.campaigns.factories import workflow
from tests.factories import PhysicsGroupFactory, WorkflowTemplateFactory
from tests.monitoring.builders import planned_campaign

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(experiment, operator):
    """1000 events at 100 per job: generation 10 jobs, simulation 10, reconstruction 5."""
    campaign = planned_campaign(experiment, operator, events=1000, per_job=100)
    request = ProductionRequest.objects.get(campaign_link__campaign=campaign)
    return campaign, request


def stage(request, name):
    return Stage.objects.get(request=request, name=name)


def test_an_approved_extension_appends_jobs_to_every_stage(running, liaison, operator):
    campaign, request = running
    sample = request.samples.get()
    before = forecast_request(request).remaining_jobs

    filed = file_extension(request, liaison, 450, "the fit needs more statistics")

    assert filed.state == ExtensionState.SUBMITTED
    assert stage(request, "generation").jobs_total == 10  # nothing planned before approval
    done = approve_extension(filed, operator, "fine")

    assert (done.state, done.jobs_added, done.decided_by) == (ExtensionState.APPROVED, 13, operator)
    gen, sim, reco = (stage(request, n) for n in ("generation", "simulation", "reconstruction"))
    assert (gen.jobs_total, sim.jobs_total, reco.jobs_total) == (15, 15, 8)
    new_gen = list(Job.objects.filter(stage=gen, index__gte=10).order_by("index"))
    assert [(j.events_first, j.events, j.state) for j in new_gen] == [
        (1000, 100, JobState.READY),
        (1100, 100, JobState.READY),
        (1200, 100, JobState.READY),
        (1300, 100, JobState.READY),
        (1400, 50, JobState.READY),
    ]
    new_sim = list(Job.objects.filter(stage=sim, index__gte=10).order_by("index"))
    assert [(j.input_first, j.input_count, j.state) for j in new_sim] == [
        (i, 1, JobState.PLANNED) for i in range(10, 15)
    ]
    # Reconstruction reads two simulation outputs a job: the new jobs read the new ones.
    new_reco = list(Job.objects.filter(stage=reco, index__gte=5).order_by("index"))
    assert [(j.input_first, j.input_count) for j in new_reco] == [(10, 2), (12, 2), (14, 1)]
    sample.refresh_from_db()
    assert sample.events == 1450
    # The counters stay right, and the forecast counts the new work.
    kept = [s.counts() for s in Stage.objects.filter(campaign=campaign).order_by("pk")]
    recount_stages(list(Stage.objects.filter(campaign=campaign).values_list("id", flat=True)))
    assert kept == [s.counts() for s in Stage.objects.filter(campaign=campaign).order_by("pk")]
    assert forecast_request(request).remaining_jobs == before + 13
    history = list(request.transitions.values_list("action", "actor"))
    assert ("extension_filed", liaison.pk) in history and ("extend", operator.pk) in history
    event = CampaignEvent.objects.get(campaign=campaign, kind=CampaignEventKind.EXTENDED)
    assert event.changes["events"] == [1000, 1450] and event.changes["jobs_added"] == [None, 13]
    with pytest.raises(CampaignError) as again:
        approve_extension(filed, operator)
    assert again.value.kind == "conflict"


def test_extensions_are_refused_with_reasons(running, liaison, other_liaison, operator):
    _campaign, request = running
    with pytest.raises(CampaignError) as refused:
        file_extension(request, other_liaison, 10, "x")
    assert refused.value.kind == "forbidden"
    with pytest.raises(CampaignError) as refused:
        file_extension(request, liaison, 0, "more")
    assert refused.value.reasons == ["events: a whole number greater than zero"]
    with pytest.raises(CampaignError) as refused:
        file_extension(request, liaison, 10, "")
    assert refused.value.reasons[0].startswith("reason: ")
    filed = file_extension(request, liaison, 10, "more")
    with pytest.raises(CampaignError) as refused:
        approve_extension(filed, liaison)
    assert refused.value.kind == "forbidden"
    with pytest.raises(CampaignError):
        reject_extension(filed, operator, "")
    rejected = reject_extension(filed, operator, "the budget is spent")
    assert rejected.state == ExtensionState.REJECTED
    assert stage(request, "generation").jobs_total == 10
    # A request not running cannot be extended (clone it instead).
    ProductionRequest.objects.filter(pk=request.pk).update(state=RequestState.COMPLETED)
    request.refresh_from_db()
    with pytest.raises(CampaignError) as refused:
        file_extension(request, liaison, 10, "more")
    assert refused.value.kind == "conflict"


def test_extension_endpoints(running, api, liaison, operator):
    _campaign, request = running
    url = f"/api/v1/requests/{request.number}/extensions/"
    filed = api(liaison).post(url, {"events": 200, "reason": "more"}, format="json")
    assert filed.status_code == 201, filed.json()
    data = filed.json()
    assert (data["state"], data["events"], data["sample"]) == (
        "submitted",
        200,
        request.samples.get().name,
    )
    assert [e["id"] for e in api(liaison).get(url).json()] == [data["id"]]
    approve = f"/api/v1/extensions/{data['id']}/approve/"
    assert api(liaison).post(approve, {}, format="json").status_code == 403
    answer = api(operator).post(approve, {"note": "ok"}, format="json")
    assert answer.status_code == 200, answer.json()
    assert (answer.json()["state"], answer.json()["jobs_added"]) == ("approved", 5)
    assert Extension.objects.get().state == ExtensionState.APPROVED


def test_clone_any_state_into_a_draft(running, liaison):
    _campaign, request = running
    clone = clone_request(liaison, request, {"title": "Second round"})
    assert (clone.state, clone.title, clone.experiment_id) == (
        RequestState.DRAFT,
        "Second round",
        request.experiment_id,
    )
    assert clone.number != request.number
    original = request.samples.get()
    copy = clone.samples.get()
    assert (copy.name, copy.template_id, copy.events, copy.output_dataset) == (
        original.name,
        original.template_id,
        original.events,
        original.output_dataset,
    )
    # Checked as any new request: the template's defaults are filled in.
    assert copy.parameters == {**original.parameters, "seed": 1}
    assert Transition.objects.get(request=clone, action="clone").note == (
        f"Cloned from {request.number}."
    )
    assert Transition.objects.get(request=request, action="cloned").note == (
        f"Cloned into {clone.number}."
    )


def test_clone_into_another_experiment(running, experiment, other_experiment, operator, liaison):
    _campaign, request = running
    sample = request.samples.get()
    sample.output_dataset = f"{experiment.slug}:mc/numu"
    sample.save()
    with pytest.raises(PermissionDenied):
        clone_request(liaison, request, {"experiment": other_experiment.slug})
    # Without a template of the same name there, the refusal names the sample's field.
    with pytest.raises(ValidationError) as refused:
        clone_request(operator, request, {"experiment": other_experiment.slug})
    assert "physics_group" in refused.value.message_dict
    PhysicsGroupFactory(experiment=other_experiment, slug=request.physics_group.slug)
    shared = WorkflowTemplateFactory(experiment=None, name=sample.template.name)
    workflow(other_experiment, name=sample.template.name)

    clone = clone_request(operator, request, {"experiment": other_experiment.slug})

    copy = clone.samples.get()
    assert clone.experiment == other_experiment
    assert copy.output_dataset == f"{other_experiment.slug}:mc/numu"
    assert copy.template.experiment_id in (other_experiment.pk, None)
    assert copy.template_id != sample.template_id and shared.pk


def test_clone_endpoint(running, api, liaison, physicist):
    _campaign, request = running
    url = f"/api/v1/requests/{request.pk}/clone/"
    assert api(physicist).post(url, {}, format="json").status_code == 403
    bad = api(liaison).post(url, {"deadline": "2001-01-01"}, format="json")
    assert bad.status_code == 400 and "deadline" in bad.json()
    answer = api(liaison).post(url, {"ticket": "RITM0099999"}, format="json")
    assert answer.status_code == 201, answer.json()
    assert (answer.json()["state"], answer.json()["ticket"]) == ("draft", "RITM0099999")

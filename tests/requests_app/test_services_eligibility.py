"""The SLA checklist: each condition failing alone names what is missing; approve refuses."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from experiments.choices import TrainingTopic
from experiments.models import ProductionCode, TrainingRecord
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest
from requests_app.services import TransitionError, sla_checks, transition, unmet
from requests_app.services.eligibility import ticket_is_valid
from tests.factories import (
    ProductionCodeFactory,
    SampleFactory,
    StageTemplateFactory,
    UserFactory,
    WorkflowTemplateFactory,
)
from tests.requests_app.builders import make_request, qualify


@pytest.fixture
def template(experiment, liaison):
    return qualify(experiment, liaison)


@pytest.fixture
def submitted(experiment, liaison, template):
    return make_request(experiment, liaison, RequestState.SUBMITTED)


def failing(req) -> dict[str, list[str]]:
    return {check.key: check.missing for check in sla_checks(req) if not check.ok}


def test_a_qualified_request_is_eligible_and_approved(submitted, operator):
    checks = sla_checks(submitted)
    assert [c.key for c in checks] == ["sla", "code", "training", "ticket"]
    assert all(c.ok and not c.missing and c.fixer for c in checks)
    assert unmet(submitted) == []
    assert transition(submitted, "approve", operator).state == RequestState.APPROVED


@pytest.mark.parametrize("missing", ["date", "document"])
def test_sla_not_accepted(submitted, experiment, missing):
    if missing == "date":
        experiment.sla_accepted_on = None
    else:
        experiment.sla_reference = ""
    experiment.save()
    submitted.refresh_from_db()
    assert failing(submitted) == {
        "sla": ["DUNE has no recorded SLA acceptance (date and document)"]
    }


def _code(experiment) -> ProductionCode:
    return ProductionCode.objects.get(experiment=experiment)


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        ("unapproved", "dune-gen 1.0 is not approved"),
        ("no_checksum", "dune-gen 1.0 has no sha256 checksum"),
        ("no_owners", "dune-gen 1.0 has no owners"),
        ("stranger", "dune-gen 1.0 is owned by accounts not authorised for dune: intruder"),
        ("physicist_owner", "dune-gen 1.0 is owned by accounts not authorised for dune: phys"),
    ],
)
def test_code_not_qualified(submitted, experiment, physicist, spoil, message):
    code = _code(experiment)
    if spoil == "unapproved":
        code.approved = False
    elif spoil == "no_checksum":
        code.sha256 = ""
    elif spoil == "no_owners":
        code.owners.clear()
    elif spoil == "stranger":
        code.owners.add(UserFactory(username="intruder"))
    elif spoil == "physicist_owner":
        code.owners.add(physicist)  # a member, but not authorised to own production code
    code.save()
    assert failing(submitted) == {"code": [message]}


def test_code_of_another_experiment(submitted, experiment, other_experiment, template):
    foreign = ProductionCodeFactory(experiment=other_experiment, name="sbnd-reco")
    foreign.owners.add(submitted.requester)
    StageTemplateFactory(template=template, code=foreign, position=2, name="reco")
    assert failing(submitted) == {"code": ["sbnd-reco 1.0 is registered for another experiment"]}


def test_template_without_stages(experiment, liaison, template):
    empty = WorkflowTemplateFactory(experiment=experiment, name="empty")
    req = make_request(experiment, liaison, RequestState.SUBMITTED, template=empty)
    assert failing(req) == {"code": ["template empty has no stages"]}


def test_request_without_samples(experiment, liaison, template):
    req = make_request(experiment, liaison, RequestState.SUBMITTED, samples=0)
    assert failing(req) == {"code": ["the request has no samples"]}


def test_training_missing(submitted, experiment):
    TrainingRecord.objects.filter(experiment=experiment).update(topics=["submission"])
    assert failing(submitted) == {"training": ["no training recorded on monitoring"]}


def test_input_data_needs_data_handling_training(submitted, experiment):
    TrainingRecord.objects.filter(experiment=experiment).update(
        topics=[TrainingTopic.SUBMISSION, TrainingTopic.MONITORING]
    )
    assert failing(submitted) == {}  # generation only: no data handling needed
    submitted.samples.update(input_dataset="mcc4:flux")
    assert failing(submitted) == {"training": ["no training recorded on data handling"]}


def test_training_of_another_experiment_does_not_count(submitted, experiment, other_experiment):
    TrainingRecord.objects.filter(experiment=experiment).update(experiment=other_experiment)
    assert failing(submitted) == {
        "training": ["no training recorded on monitoring", "no training recorded on job submission"]
    }


def test_malformed_ticket(submitted):
    submitted.ticket = "ticket 42"
    submitted.save()
    missing = failing(submitted)
    assert list(missing) == ["ticket"]
    assert missing["ticket"][0].startswith("'ticket 42' does not match")


def test_approve_is_refused_with_every_missing_item(submitted, experiment, operator):
    experiment.sla_accepted_on = None
    experiment.save()
    _code(experiment).owners.clear()
    submitted.ticket = "42"
    submitted.save()
    with pytest.raises(TransitionError) as refused:
        transition(submitted, "approve", operator)
    assert refused.value.kind == "conflict"
    assert "not eligible" in refused.value.detail
    assert refused.value.reasons == unmet(submitted)
    assert len(refused.value.reasons) == 3
    submitted.refresh_from_db()
    assert submitted.state == RequestState.SUBMITTED
    assert not submitted.transitions.exists()


def test_eligibility_runs_a_fixed_number_of_queries(submitted, experiment, template):
    def queries() -> int:
        req = ProductionRequest.objects.get(pk=submitted.pk)
        with CaptureQueriesContext(connection) as captured:
            sla_checks(req)
        return len(captured)

    small = queries()
    for position in range(2, 8):
        code = ProductionCodeFactory(experiment=experiment, name=f"step{position}")
        code.owners.add(submitted.requester, UserFactory())
        StageTemplateFactory(template=template, code=code, position=position)
        SampleFactory(request=submitted, template=template)
    assert queries() == small <= 8


def test_ticket_pattern_setting_is_respected(settings, submitted, operator):
    assert ticket_is_valid("RITM0012345")
    settings.OPOS_TICKET_PATTERN = r"^INC[0-9]{6}$"
    assert not ticket_is_valid("RITM0012345")
    assert ticket_is_valid("INC123456")
    assert list(failing(submitted)) == ["ticket"]
    with pytest.raises(TransitionError):
        transition(submitted, "approve", operator)
    submitted.ticket = "INC123456"
    submitted.save()
    assert failing(submitted) == {}
    assert transition(submitted, "approve", operator).state == RequestState.APPROVED

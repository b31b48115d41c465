"""Filing and editing requests: bad input refused naming the field, nothing half-saved."""

import datetime as dt
import re

import pytest
from django.core.exceptions import ValidationError
from django.db.models import Sum
from django.utils import timezone

from common.errors import PermissionDenied
from experiments.models import StageTemplate
from requests_app.choices import RequestState
from requests_app.models import Comment, ProductionRequest, RequestCounter, Sample, Transition
from requests_app.services import (
    EditConflict,
    add_comment,
    assign,
    create_request,
    next_request_number,
    update_request,
)
from tests.factories import WorkflowTemplateFactory
from tests.requests_app.builders import make_request, qualify, request_fields, sample_line


@pytest.fixture
def template(experiment, liaison):
    template = qualify(experiment, liaison)
    stage = StageTemplate.objects.get(template=template)
    stage.parameters = {
        "seed": {"type": "int", "default": 1, "min": 1, "max": 1000},
        "generator": {"type": "str", "default": "genie"},
    }
    stage.save()
    return template


def written() -> tuple:
    """Everything a refused call must leave untouched."""
    return (
        ProductionRequest.objects.count(),
        Sample.objects.count(),
        Transition.objects.count(),
        Comment.objects.count(),
        RequestCounter.objects.aggregate(n=Sum("last"))["n"],
    )


def refused_create(user, experiment, fields=None, samples=None) -> dict:
    """Try to file; return the error dict (per sample line for ``samples``)."""
    before = written()
    with pytest.raises(ValidationError) as refused:
        create_request(
            user,
            experiment,
            request_fields(**(fields or {})),
            samples if samples is not None else [sample_line()],
        )
    assert written() == before
    return errors_of(refused.value)


def errors_of(exc: ValidationError) -> dict:
    out = {}
    for field, errors in exc.error_dict.items():
        if field == "samples":
            out[field] = [
                {k: [m for e in v for m in e.messages] for k, v in e.error_dict.items()}
                if hasattr(e, "error_dict")
                else e.messages
                for e in errors
            ]
        else:
            out[field] = [m for e in errors for m in e.messages]
    return out


def test_file_a_draft(liaison, experiment, template):
    req = create_request(liaison, experiment, request_fields(), [sample_line()])
    assert req.state == RequestState.DRAFT
    assert re.fullmatch(rf"DUNE-{timezone.now().year}-\d{{4}}", req.number)
    assert (req.requester, req.physics_group.slug, req.priority) == (
        liaison,
        "oscillations",
        "high",
    )
    sample = req.samples.get()
    assert sample.template == template
    assert sample.parameters == {"seed": 7, "generator": "genie"}  # defaults filled in
    record = Transition.objects.get(request=req)
    assert (record.action, record.actor) == ("create", liaison)


def test_template_by_id_or_name(liaison, experiment, template):
    req = create_request(
        liaison,
        experiment,
        request_fields(),
        [sample_line(name="a", template=template.id), sample_line(name="b", template="mc-gen")],
    )
    assert [s.template_id for s in req.samples.all()] == [template.id, template.id]


def test_past_deadline(liaison, experiment, template):
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    errors = refused_create(liaison, experiment, {"deadline": yesterday.isoformat()})
    assert errors == {"deadline": [f"{yesterday} is in the past"]}


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ({"events": 0}, "events", "must be greater than zero"),
        ({"events": -5}, "events", "must be greater than zero"),
        ({"events": "many"}, "events", "a whole number is required"),
        ({"events_per_job": 0}, "events_per_job", "must be greater than zero"),
        ({"events_per_job": 200000}, "events_per_job", "larger than the number of events"),
        ({"template": "no-such"}, "template", "unknown workflow template for DUNE"),
        ({"name": "bad name!"}, "name", "letters, digits"),
        ({"output_dataset": ""}, "output_dataset", "required"),
        ({"input_dataset": "a b"}, "input_dataset", "letters, digits"),
        ({"parameters": {"energy": 3}}, "parameters", "energy: unknown parameter"),
        ({"parameters": {"seed": 0}}, "parameters", "seed: must be at least 1"),
        ({"parameters": {"seed": "x"}}, "parameters", "seed: expected a whole number"),
        ({"parameters": {"generator": "a" * 201}}, "parameters", "at most 200 characters"),
    ],
)
def test_bad_sample_line(liaison, experiment, template, line, field, message):
    errors = refused_create(liaison, experiment, samples=[sample_line(**line)])
    assert list(errors) == ["samples"]
    assert list(errors["samples"][0]) == [field]
    assert message in errors["samples"][0][field][0]


@pytest.mark.parametrize(
    "value", ["genie; rm -rf /", "$(id)", "`id`", "a|b", "a && b", "x > /etc/passwd", "a\nb", "'q'"]
)
def test_shell_metacharacters_in_parameters(liaison, experiment, template, value):
    errors = refused_create(
        liaison, experiment, samples=[sample_line(parameters={"generator": value})]
    )
    assert errors["samples"][0]["parameters"] == [
        "generator: only letters, digits and _ . , : / + = @ % - are allowed"
    ]


def test_errors_stay_with_their_sample_line(liaison, experiment, template):
    errors = refused_create(
        liaison,
        experiment,
        {"ticket": "nope"},
        [sample_line(name="good"), sample_line(name="bad", events=0), sample_line(name="good")],
    )
    assert list(errors) == ["ticket", "samples"]
    assert errors["samples"] == [
        {},
        {"events": ["must be greater than zero"]},
        {"name": ["'good' is used twice"]},
    ]


def test_template_of_another_experiment(liaison, experiment, other_experiment, template):
    foreign = WorkflowTemplateFactory(experiment=other_experiment, name="sbnd-only")
    for ref in (foreign.id, "sbnd-only"):
        errors = refused_create(liaison, experiment, samples=[sample_line(template=ref)])
        assert errors["samples"][0] == {"template": ["unknown workflow template for DUNE"]}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"ticket": "12345"}, "ticket"),
        ({"ticket": "RITM 0012345"}, "ticket"),
        ({"physics_group": "no-such-group"}, "physics_group"),
        ({"title": "  "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"deadline": "next week"}, "deadline"),
        ({"deadline": None}, "deadline"),
        ({"priority": "urgent"}, "priority"),
        ({"description": "x" * 20001}, "description"),
    ],
)
def test_bad_request_field(liaison, experiment, template, fields, field):
    assert list(refused_create(liaison, experiment, fields)) == [field]


def test_group_of_another_experiment(liaison, experiment, other_experiment, template):
    from tests.factories import PhysicsGroupFactory

    PhysicsGroupFactory(experiment=other_experiment, slug="sbnd-xsec")
    errors = refused_create(liaison, experiment, {"physics_group": "sbnd-xsec"})
    assert errors == {"physics_group": ["not a working group of DUNE"]}


@pytest.mark.parametrize("who", ["other_liaison", "physicist"])
def test_only_liaisons_of_the_experiment_file(request, experiment, template, who):
    user = request.getfixturevalue(who)
    before = written()
    with pytest.raises(PermissionDenied, match="not a liaison of DUNE"):
        create_request(user, experiment, request_fields(), [sample_line()])
    assert written() == before


def test_operators_file_on_behalf(operator, experiment, template):
    assert create_request(operator, experiment, request_fields(), []).requester == operator


def test_numbers_are_sequential_and_unique_per_year(liaison, experiment, template):
    year = timezone.now().year
    numbers = [create_request(liaison, experiment, request_fields(), []).number for _ in range(3)]
    assert numbers == [f"DUNE-{year}-0001", f"DUNE-{year}-0002", f"DUNE-{year}-0003"]
    assert next_request_number(experiment, 2031) == "DUNE-2031-0001"
    assert next_request_number(experiment, year) == f"DUNE-{year}-0004"
    assert next_request_number(experiment, 2031) == "DUNE-2031-0002"


def test_a_refused_request_uses_no_number(liaison, experiment, template):
    refused_create(liaison, experiment, {"ticket": "bad"})
    year = timezone.now().year
    assert create_request(liaison, experiment, request_fields(), []).number == f"DUNE-{year}-0001"


# --- Editing ------------------------------------------------------------------


def refused_update(exc_type, req, user, data, samples=None):
    before = (written(), list(req.samples.values_list("name", "events")))
    with pytest.raises(exc_type) as refused:
        update_request(req, user, data, samples=samples)
    assert (written(), list(req.samples.values_list("name", "events"))) == before
    return refused.value


@pytest.mark.parametrize("state", [RequestState.DRAFT, RequestState.NEEDS_INFO])
def test_liaison_edits_freely_while_editable(experiment, liaison, template, state):
    req = make_request(experiment, liaison, state, title="Old")
    version = req.version
    updated = update_request(
        req,
        liaison,
        {"title": "New", "priority": "critical"},
        samples=[sample_line(name="replacement", events=500, events_per_job=50)],
    )
    assert (updated.title, updated.priority, updated.version) == ("New", "critical", version + 1)
    assert list(updated.samples.values_list("name", flat=True)) == ["replacement"]
    record = Transition.objects.get(request=req, action="edit")
    assert record.actor == liaison
    assert record.changes["title"] == ["Old", "New"]
    assert record.changes["priority"] == ["normal", "critical"]
    assert record.changes["samples"][1] == ["replacement"]


def test_unchanged_values_are_not_an_edit(experiment, liaison, template):
    req = make_request(experiment, liaison, title="Same")
    update_request(req, liaison, {"title": "Same"})
    assert not Transition.objects.filter(request=req).exists()


@pytest.mark.parametrize(
    "state",
    [RequestState.SUBMITTED, RequestState.APPROVED, RequestState.IN_PRODUCTION],
)
def test_liaison_cannot_edit_after_submission(experiment, liaison, template, state):
    req = make_request(experiment, liaison, state)
    exc = refused_update(EditConflict, req, liaison, {"title": "Changed", "deadline": "2099-01-01"})
    state_label = RequestState(state).label.lower()
    assert exc.message_dict == {
        "deadline": [f"cannot be changed while the request is {state_label}"],
        "title": [f"cannot be changed while the request is {state_label}"],
    }
    refused_update(EditConflict, req, liaison, {}, samples=[sample_line()])


def test_operator_changes_priority_and_deadline_after_approval(
    experiment, liaison, operator, template
):
    req = make_request(experiment, liaison, RequestState.APPROVED)
    later = req.deadline + dt.timedelta(days=7)
    update_request(req, operator, {"priority": "critical", "deadline": later}, note="DUNE asked")
    req.refresh_from_db()
    assert (req.priority, req.deadline) == ("critical", later)
    record = Transition.objects.get(request=req, action="edit")
    assert (record.actor, record.note) == (operator, "DUNE asked")
    assert record.changes == {
        "priority": ["normal", "critical"],
        "deadline": [(later - dt.timedelta(days=7)).isoformat(), later.isoformat()],
    }
    exc = refused_update(EditConflict, req, operator, {"title": "Nope"})
    assert list(exc.message_dict) == ["title"]


def test_operator_deadline_still_checked(experiment, liaison, operator, template):
    req = make_request(experiment, liaison, RequestState.APPROVED)
    exc = refused_update(ValidationError, req, operator, {"deadline": dt.date(2020, 1, 1)})
    assert exc.message_dict == {"deadline": ["2020-01-01 is in the past"]}


@pytest.mark.parametrize("state", [RequestState.CLOSED, RequestState.CANCELLED])
def test_nothing_changes_once_terminal(experiment, liaison, operator, template, state):
    req = make_request(experiment, liaison, state)
    refused_update(EditConflict, req, operator, {"priority": "low"})
    refused_update(EditConflict, req, liaison, {"title": "Late"})


def test_physicists_never_edit(experiment, liaison, physicist, template):
    req = make_request(experiment, liaison)
    exc = refused_update(PermissionDenied, req, physicist, {"title": "Mine now"})
    assert str(exc) == "Only liaisons of DUNE and operators edit its requests."


def test_liaisons_never_assign(experiment, liaison, template):
    req = make_request(experiment, liaison)
    exc = refused_update(PermissionDenied, req, liaison, {"assignee": liaison})
    assert str(exc) == "Only operators change assignee."
    with pytest.raises(PermissionDenied):
        assign(req, liaison, liaison)


def test_assign_only_to_operators(experiment, liaison, operator, template):
    req = make_request(experiment, liaison, RequestState.SUBMITTED)
    exc = refused_update(ValidationError, req, operator, {"assignee": liaison})
    assert exc.message_dict == {"assignee": ["liaison is not an operator"]}
    assert assign(req, operator, operator).assignee == operator
    assert Transition.objects.get(request=req, action="edit").changes == {"assignee": [None, "op"]}


def test_bad_samples_keep_the_old_ones(experiment, liaison, template):
    req = make_request(experiment, liaison, samples=2)
    exc = refused_update(
        ValidationError,
        req,
        liaison,
        {"deadline": "someday"},
        samples=[sample_line(), sample_line(events=0)],
    )
    assert errors_of(exc) == {
        "deadline": ["'someday' is not a date (YYYY-MM-DD)"],
        "samples": [{}, {"events": ["must be greater than zero"]}],
    }


def test_unknown_field_is_refused(experiment, liaison, template):
    req = make_request(experiment, liaison)
    exc = refused_update(ValidationError, req, liaison, {"state": "approved"})
    assert exc.message_dict == {"state": ["not a field that can be edited"]}


# --- Comments -----------------------------------------------------------------


def test_comments(experiment, liaison, operator, physicist, other_liaison, template):
    req = make_request(experiment, liaison, RequestState.SUBMITTED)
    assert add_comment(req, liaison, "  Flux files are ready.  ").body == "Flux files are ready."
    assert add_comment(req, operator, "Thanks").author == operator
    for stranger in (physicist, other_liaison):
        with pytest.raises(PermissionDenied):
            add_comment(req, stranger, "me too")
    with pytest.raises(ValidationError) as refused:
        add_comment(req, liaison, "   ")
    assert refused.value.message_dict == {"body": ["a comment cannot be empty"]}
    assert Comment.objects.filter(request=req).count() == 2

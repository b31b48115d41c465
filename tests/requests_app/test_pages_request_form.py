"""The new-request and edit pages: values kept, errors by their fields, drafts, submit."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from requests_app.choices import RequestState
from requests_app.models import ProductionRequest, Transition
from tests.factories import StageTemplateFactory, WorkflowTemplateFactory
from tests.requests_app.builders import make_request, qualify

NEW = reverse("requests:new")


@pytest.fixture
def template(experiment, liaison):
    template = qualify(experiment, liaison)
    # A text parameter, to try shell metacharacters on.
    StageTemplateFactory(
        template=template,
        position=2,
        name="reco",
        parameters={"tag": {"type": "str", "default": "v1"}},
    )
    return template


@pytest.fixture
def group(experiment, template):
    return experiment.groups.get(slug="oscillations")


def line(workflow, **overrides):
    values = {
        "name": "nu-mu-cc",
        "template": str(workflow.id),
        "events": "100000",
        "events_per_job": "1000",
        "parameters": "seed=7\ntag=mcc5",
        "input_dataset": "",
        "output_dataset": "dune:mcc5:nu-mu-cc",
    }
    values.update(overrides)
    return values


def form_data(group, lines=(), intent="save", initial_lines=0, **fields):
    data = {
        "experiment": group.experiment.slug,
        "ticket": "RITM0012345",
        "physics_group": str(group.id),
        "title": "MCC5.0 oscillation samples",
        "description": "For the oscillation analysis.",
        "deadline": (timezone.localdate() + dt.timedelta(days=30)).isoformat(),
        "priority": "high",
        "intent": intent,
        "samples-TOTAL_FORMS": str(len(lines)),
        "samples-INITIAL_FORMS": str(initial_lines),
        "samples-MIN_NUM_FORMS": "0",
        "samples-MAX_NUM_FORMS": "1000",
    }
    for index, values in enumerate(lines):
        for key, value in values.items():
            data[f"samples-{index}-{key}"] = value
    data.update(fields)
    return data


def field_errors(response, field, line=None):
    if line is None:
        return response.context["form"].errors.get(field, [])
    return response.context["formset"].forms[line].errors.get(field, [])


def test_new_page_labels_every_field_and_has_csrf(client, liaison, template):
    client.force_login(liaison)
    response = client.get(NEW)
    assert response.status_code == 200
    html = response.content.decode()
    assert "csrfmiddlewaretoken" in html
    form, formset = response.context["form"], response.context["formset"]
    for bound in [*form, *formset.forms[0]]:
        assert f'for="{bound.id_for_label}"' in html, bound.name
    assert 'name="intent" value="submit"' in html
    # The template's accepted parameters and defaults are shown.
    assert "seed" in html and "tag" in html


def test_new_page_refused_to_physicists_and_anonymous(client, physicist, template):
    assert client.get(NEW).status_code == 302
    client.force_login(physicist)
    assert client.get(NEW).status_code == 403


def test_save_draft_then_finish_and_submit_later(client, liaison, template, group):
    client.force_login(liaison)
    response = client.post(NEW, form_data(group))
    request = ProductionRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == request.get_absolute_url()
    assert request.state == RequestState.DRAFT
    assert request.samples.count() == 0

    edit = reverse("requests:edit", args=[request.number])
    page = client.get(edit)
    assert page.status_code == 200
    assert 'value="RITM0012345"' in page.content.decode()

    data = form_data(group, [line(template)], intent="submit", title="MCC5.0 final")
    del data["experiment"]
    response = client.post(edit, data)
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.state == RequestState.SUBMITTED
    assert request.title == "MCC5.0 final"
    sample = request.samples.get()
    assert sample.parameters == {"seed": 7, "tag": "mcc5"}
    edit_record = Transition.objects.get(request=request, action="edit")
    assert edit_record.changes["title"] == ["MCC5.0 oscillation samples", "MCC5.0 final"]
    assert edit_record.changes["samples"] == [[], ["nu-mu-cc"]]


def test_submit_files_and_submits_in_one_go(client, liaison, template, group):
    client.force_login(liaison)
    response = client.post(NEW, form_data(group, [line(template)], intent="submit"))
    assert response.status_code == 302
    request = ProductionRequest.objects.get()
    assert request.state == RequestState.SUBMITTED
    assert request.requester == liaison
    assert list(request.transitions.values_list("action", flat=True)) == ["create", "submit"]


def test_refused_submit_saves_nothing_and_says_why(client, liaison, template, group):
    client.force_login(liaison)
    response = client.post(NEW, form_data(group, [], intent="submit"))
    assert response.status_code == 200
    assert not ProductionRequest.objects.exists()
    assert "add at least one sample" in response.content.decode()
    assert response.context["form"]["title"].value() == "MCC5.0 oscillation samples"


@pytest.mark.parametrize(
    ("fields", "line_overrides", "field", "on_line", "message"),
    [
        ({"ticket": "12345"}, {}, "ticket", None, "not a service-desk reference"),
        ({"deadline": "2020-01-01"}, {}, "deadline", None, "in the past"),
        ({}, {"events": "0"}, "events", 0, "greater than zero"),
        ({}, {"events": "10", "events_per_job": "100"}, "events_per_job", 0, "larger than"),
        ({}, {"parameters": "nope=1"}, "parameters", 0, "unknown parameter"),
        ({}, {"parameters": "tag=x;rm -rf /"}, "parameters", 0, "only letters, digits"),
        ({}, {"parameters": "seed"}, "parameters", 0, "expected key=value"),
        ({}, {"template": "999999"}, "template", 0, "unknown workflow template"),
    ],
)
def test_bad_input_keeps_values_and_shows_error_by_field(
    client, liaison, template, group, fields, line_overrides, field, on_line, message
):
    client.force_login(liaison)
    good_line = line(template, name="good-line", output_dataset="dune:mcc5:good")
    data = form_data(group, [line(template, **line_overrides), good_line], **fields)
    response = client.post(NEW, data)
    assert response.status_code == 200
    assert not ProductionRequest.objects.exists()
    errors = field_errors(response, field, on_line)
    assert any(message in e for e in errors), errors
    html = response.content.decode()
    bound = (
        response.context["form"][field]
        if on_line is None
        else response.context["formset"].forms[on_line][field]
    )
    # The message sits by its field, which is marked invalid.
    assert f'id="{bound.auto_id}_error"' in html
    assert 'aria-invalid="true"' in html
    # Every value typed comes back.
    assert 'value="MCC5.0 oscillation samples"' in html
    assert 'value="good-line"' in html
    assert response.context["formset"].forms[1].errors == {}
    for key, value in data.items():
        if key.startswith("samples-0-") and key != "samples-0-template":
            assert response.context["formset"].forms[0][key.rsplit("-", 1)[1]].value() == value


def test_unknown_template_of_another_experiment(
    client, operator, template, group, other_experiment
):
    other = WorkflowTemplateFactory(experiment=other_experiment, name="theirs")
    client.force_login(operator)
    response = client.post(NEW, form_data(group, [line(template, template=str(other.id))]))
    assert response.status_code == 200
    assert any("unknown workflow template" in e for e in field_errors(response, "template", 0))
    assert not ProductionRequest.objects.exists()


def test_duplicate_sample_names_are_refused_on_the_second_line(client, liaison, template, group):
    client.force_login(liaison)
    response = client.post(NEW, form_data(group, [line(template), line(template)]))
    assert response.status_code == 200
    assert field_errors(response, "name", 0) == []
    assert any("used twice" in e for e in field_errors(response, "name", 1))


def test_cannot_file_for_an_experiment_of_someone_else(client, other_liaison, template, group):
    client.force_login(other_liaison)
    response = client.post(NEW, form_data(group, [line(template)]))
    assert response.status_code == 200
    assert field_errors(response, "experiment")
    assert not ProductionRequest.objects.exists()


def test_blank_extra_line_is_ignored(client, liaison, template, group):
    client.force_login(liaison)
    blank = dict.fromkeys(line(template), "")
    response = client.post(NEW, form_data(group, [line(template), blank]))
    assert response.status_code == 302
    assert ProductionRequest.objects.get().samples.count() == 1


def test_add_line_without_script_keeps_values_and_shows_no_errors(client, liaison, template, group):
    client.force_login(liaison)
    response = client.post(NEW, form_data(group, [line(template)], intent="add_line"))
    assert response.status_code == 200
    assert not ProductionRequest.objects.exists()
    formset = response.context["formset"]
    assert len(formset.forms) == 2
    assert not response.context["form"].is_bound
    assert formset.forms[0]["name"].value() == "nu-mu-cc"
    assert 'class="error"' not in response.content.decode()


def test_operator_files_a_draft_but_cannot_submit_for_the_experiment(
    client, operator, template, group
):
    client.force_login(operator)
    page = client.get(NEW)
    assert 'value="submit"' not in page.content.decode()
    response = client.post(NEW, form_data(group, [line(template)]))
    assert response.status_code == 302
    assert ProductionRequest.objects.get().requester == operator


def test_edit_removes_a_line(client, liaison, template, group):
    request = make_request(group.experiment, liaison, samples=2, template=template)
    names = list(request.samples.order_by("id").values_list("name", flat=True))
    client.force_login(liaison)
    edit = reverse("requests:edit", args=[request.number])
    page = client.get(edit)
    formset = page.context["formset"]
    assert len(formset.forms) == 2
    lines = [
        {**{k: formset.forms[i][k].value() or "" for k in line(template)}, "DELETE": ""}
        for i in range(2)
    ]
    lines[1]["DELETE"] = "on"
    data = form_data(group, lines, initial_lines=2, ticket=request.ticket, title=request.title)
    del data["experiment"]
    data["deadline"] = request.deadline.isoformat()
    data["priority"] = request.priority
    data["description"] = request.description
    response = client.post(edit, data)
    assert response.status_code == 302, response.context and response.context["form"].errors
    assert list(request.samples.values_list("name", flat=True)) == names[:1]


def test_saving_unchanged_draft_records_nothing(client, liaison, template, group):
    request = make_request(group.experiment, liaison, template=template)
    request.samples.update(parameters={"seed": 1, "tag": "v1"})  # as filed: defaults filled in
    client.force_login(liaison)
    edit = reverse("requests:edit", args=[request.number])
    formset = client.get(edit).context["formset"]
    lines = [{k: formset.forms[0][k].value() or "" for k in line(template)}]
    data = form_data(group, lines, initial_lines=1, ticket=request.ticket, title=request.title)
    del data["experiment"]
    data.update(
        deadline=request.deadline.isoformat(),
        priority=request.priority,
        description=request.description,
    )
    assert client.post(edit, data).status_code == 302
    assert not Transition.objects.filter(request=request, action="edit").exists()


def test_edit_page_visibility(client, liaison, physicist, other_liaison, template):
    request = make_request(liaison.memberships.get().experiment, liaison, template=template)
    edit = reverse("requests:edit", args=[request.number])
    client.force_login(other_liaison)
    assert client.get(edit).status_code == 404
    client.force_login(physicist)
    assert client.get(edit).status_code == 403
    request.state = RequestState.APPROVED
    request.save()
    client.force_login(liaison)
    assert client.get(edit).status_code == 403


def test_operator_changes_priority_after_approval_with_a_reason(
    client, operator, liaison, template
):
    request = make_request(
        liaison.memberships.get().experiment, liaison, RequestState.APPROVED, template=template
    )
    edit = reverse("requests:edit", args=[request.number])
    client.force_login(operator)
    page = client.get(edit)
    assert page.status_code == 200
    assert "reason" in page.context["form"].fields
    data = {
        "priority": "critical",
        "deadline": request.deadline.isoformat(),
        "assignee": str(operator.pk),
        "reason": "",
    }
    response = client.post(edit, data)
    assert response.status_code == 200
    assert response.context["form"].errors["reason"]

    response = client.post(edit, {**data, "reason": "Collaboration meeting moved up"})
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.priority == "critical"
    assert request.assignee == operator
    record = Transition.objects.get(request=request, action="edit")
    assert record.note == "Collaboration meeting moved up"
    assert record.changes["priority"] == ["normal", "critical"]


def test_operator_change_refuses_a_past_deadline(client, operator, liaison, template):
    request = make_request(
        liaison.memberships.get().experiment, liaison, RequestState.APPROVED, template=template
    )
    client.force_login(operator)
    response = client.post(
        reverse("requests:edit", args=[request.number]),
        {"priority": request.priority, "deadline": "2020-01-01", "reason": "why not"},
    )
    assert response.status_code == 200
    assert any("in the past" in e for e in response.context["form"].errors["deadline"])
    assert 'value="why not"' not in response.content.decode()  # a textarea, not an input
    assert "why not" in response.content.decode()

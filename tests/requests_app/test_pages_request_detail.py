"""The request page: who sees it, the checklist, hold time, action buttons, comments, timeline."""

import datetime as dt

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from requests_app.choices import RequestState
from requests_app.models import Comment, TrainingRecord, Transition
from tests.requests_app.builders import make_request, qualify

S = RequestState


@pytest.fixture
def template(experiment, liaison):
    return qualify(experiment, liaison)


def new_request(experiment, liaison, state=S.SUBMITTED, **fields):
    return make_request(experiment, liaison, state, **fields)


def act(client, request, action, note=""):
    return client.post(
        reverse("requests:action", args=[request.number]), {"action": action, "note": note}
    )


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_visibility_by_role(
    client, experiment, liaison, physicist, other_liaison, operator, template
):
    request = new_request(experiment, liaison)
    url = request.get_absolute_url()
    assert url == f"/requests/{request.number}/"

    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))

    client.force_login(other_liaison)
    assert client.get(url).status_code == 404

    for user in (liaison, physicist, operator):
        client.force_login(user)
        assert client.get(url).status_code == 200


def test_physicists_read_without_buttons_or_comment_form(
    client, experiment, liaison, physicist, template
):
    request = new_request(experiment, liaison, S.DRAFT)
    client.force_login(physicist)
    response = client.get(request.get_absolute_url())
    html = response.content.decode()
    assert request.title in html
    assert response.context["actions"] == []
    assert reverse("requests:action", args=[request.number]) not in html
    assert reverse("requests:comment", args=[request.number]) not in html
    assert act(client, request, "submit").status_code == 403
    request.refresh_from_db()
    assert request.state == S.DRAFT


def test_shows_fields_samples_and_checklist(client, experiment, liaison, template):
    request = new_request(experiment, liaison, samples=2)
    client.force_login(liaison)
    response = client.get(request.get_absolute_url())
    html = response.content.decode()
    for text in (request.number, request.ticket, "Oscillations", "Submitted", "Eligibility"):
        assert text in html
    for sample in request.samples.all():
        assert sample.name in html
    assert [c.ok for c in response.context["checks"]] == [True] * 4


def test_checklist_says_what_is_missing_and_who_fixes_it(client, experiment, liaison, template):
    TrainingRecord.objects.all().delete()
    request = new_request(experiment, liaison)
    client.force_login(liaison)
    html = client.get(request.get_absolute_url()).content.decode()
    assert "no training recorded on job submission" in html
    assert "Who can fix it: an operator records the training session" in html


def test_hold_shows_its_reason_current_duration_and_total(client, experiment, liaison, template):
    request = new_request(
        experiment,
        liaison,
        S.ON_HOLD,
        hold_started=timezone.now() - dt.timedelta(hours=3, minutes=5),
        hold_reason="account permission problem on the batch system",
        hold_seconds=86400,
    )
    client.force_login(liaison)
    html = client.get(request.get_absolute_url()).content.decode()
    assert "On hold for 3 h 5 min" in html
    assert "account permission problem on the batch system" in html
    assert "1 d 3 h" in html  # accumulated plus current


@pytest.mark.parametrize(
    ("state", "who", "action", "note", "after"),
    [
        (S.DRAFT, "liaison", "submit", "", S.SUBMITTED),
        (S.SUBMITTED, "operator", "request_info", "Which generator version?", S.NEEDS_INFO),
        (S.NEEDS_INFO, "liaison", "submit", "", S.SUBMITTED),
        (S.SUBMITTED, "operator", "approve", "", S.APPROVED),
        (S.SUBMITTED, "operator", "reject", "Duplicate of REQ-2026-0001", S.REJECTED),
        (S.APPROVED, "operator", "hold", "Account permission problem", S.ON_HOLD),
        (S.ON_HOLD, "operator", "resume", "", S.APPROVED),
        (S.SUBMITTED, "liaison", "cancel", "", S.CANCELLED),
        (S.COMPLETED, "operator", "close", "", S.CLOSED),
    ],
)
def test_each_action_button_works(
    client, experiment, template, liaison, operator, state, who, action, note, after
):
    request = new_request(experiment, liaison, state)
    user = {"liaison": liaison, "operator": operator}[who]
    client.force_login(user)
    page = client.get(request.get_absolute_url())
    assert action in [a["name"] for a in page.context["actions"]]
    assert f'name="action" value="{action}"' in page.content.decode()
    response = act(client, request, action, note)
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.state == after
    record = Transition.objects.filter(request=request).latest("id")
    assert (record.action, record.actor, record.note) == (action, user, note)
    assert any(request.number in m for m in texts(response))


def test_note_required_is_refused_without_one(client, experiment, liaison, operator, template):
    request = new_request(experiment, liaison)
    client.force_login(operator)
    response = act(client, request, "reject", "   ")
    assert response.status_code == 400
    assert "A note is required to reject." in response.content.decode()
    request.refresh_from_db()
    assert request.state == S.SUBMITTED


def test_refused_approval_shows_the_reasons_and_keeps_the_note(
    client, experiment, liaison, operator, template
):
    TrainingRecord.objects.all().delete()
    request = new_request(experiment, liaison)
    client.force_login(operator)
    response = act(client, request, "approve", "checked with the group conveners")
    assert response.status_code == 409
    html = response.content.decode()
    assert "not eligible under the service level agreement" in html
    assert "no training recorded on job submission" in html
    assert 'value="checked with the group conveners"' in html
    request.refresh_from_db()
    assert request.state == S.SUBMITTED


def test_acting_on_a_request_someone_else_moved_says_what_happened(
    client, experiment, liaison, operator, admin_user, template
):
    request = new_request(experiment, liaison)
    client.force_login(admin_user)
    assert act(client, request, "approve").status_code == 302
    client.force_login(operator)
    response = act(client, request, "request_info", "more please")
    assert response.status_code == 409
    html = response.content.decode()
    assert "the request is approved" in html
    assert "boss" in html  # who did it


def test_unknown_action_is_refused(client, experiment, liaison, operator, template):
    request = new_request(experiment, liaison)
    client.force_login(operator)
    response = act(client, request, "schedule")
    assert response.status_code == 400
    request.refresh_from_db()
    assert request.state == S.SUBMITTED


def test_comments_join_the_timeline(client, experiment, liaison, operator, template):
    request = new_request(experiment, liaison)
    client.force_login(liaison)
    url = reverse("requests:comment", args=[request.number])
    response = client.post(url, {"body": "Generator <b>v3</b>, see the wiki."})
    assert response.status_code == 302
    client.force_login(operator)
    assert act(client, request, "request_info", "Which flux file?").status_code == 302
    client.force_login(liaison)
    client.post(url, {"body": "The 2026 flux."})

    page = client.get(request.get_absolute_url())
    kinds = [(e.kind, getattr(e.obj, "action", None)) for e in page.context["timeline"]]
    assert kinds == [("comment", None), ("transition", "request_info"), ("comment", None)]
    html = page.content.decode()
    assert "Generator &lt;b&gt;v3&lt;/b&gt;" in html
    assert "Which flux file?" in html


def test_timeline_shows_edits_with_their_changes(client, experiment, liaison, template):
    request = new_request(experiment, liaison, S.DRAFT)
    Transition.objects.create(
        request=request,
        action="edit",
        from_state=S.DRAFT,
        to_state=S.DRAFT,
        actor=liaison,
        changes={"deadline": ["2026-12-01", "2026-12-15"], "samples": [["a"], ["a", "b"]]},
    )
    client.force_login(liaison)
    html = client.get(request.get_absolute_url()).content.decode()
    assert "deadline: 2026-12-01 → 2026-12-15" in html
    assert "samples: a → a, b" in html


def test_empty_comment_is_refused_by_its_field(client, experiment, liaison, template):
    request = new_request(experiment, liaison)
    client.force_login(liaison)
    response = client.post(reverse("requests:comment", args=[request.number]), {"body": ""})
    assert response.status_code == 400
    assert response.context["comment_form"].errors["body"]
    assert not Comment.objects.exists()


def test_physicist_cannot_comment(client, experiment, liaison, physicist, template):
    request = new_request(experiment, liaison)
    client.force_login(physicist)
    response = client.post(reverse("requests:comment", args=[request.number]), {"body": "hi"})
    assert response.status_code == 403
    assert not Comment.objects.exists()


def test_operator_assigns_from_the_page(client, experiment, liaison, operator, template):
    request = new_request(experiment, liaison)
    url = reverse("requests:assign", args=[request.number])
    client.force_login(liaison)
    assert client.post(url, {"assignee": operator.pk}).status_code == 403
    client.force_login(operator)
    response = client.post(url, {"assignee": operator.pk})
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.assignee == operator
    assert f"{request.number} assigned to op." in texts(response)
    client.post(url, {"assignee": ""})
    request.refresh_from_db()
    assert request.assignee is None


def test_detail_shows_the_deadline_forecast(client, operator, experiment, settings):
    """An approved request shows execution's projection against its deadline."""
    from tests.factories import ProductionRequestFactory, SampleFactory

    obj = ProductionRequestFactory(experiment=experiment, state="approved")
    SampleFactory(request=obj)
    client.force_login(operator)
    content = client.get(obj.get_absolute_url()).content.decode()
    assert "Deadline forecast" in content
    assert "would finish around" in content


def test_a_failing_forecast_never_breaks_the_page(client, operator, experiment, settings):
    from tests.factories import ProductionRequestFactory

    settings.OPOS_REQUEST_FORECAST = "builtins.no_such_function"
    obj = ProductionRequestFactory(experiment=experiment, state="approved")
    client.force_login(operator)
    response = client.get(obj.get_absolute_url())
    assert response.status_code == 200
    assert b"Deadline forecast" not in response.content

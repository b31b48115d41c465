"""The request page: who sees it, the checklist, hold time, action buttons, comments, timeline."""

import datetime as dt

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from common.decisions import sign_effect
from experiments.choices import TrainingTopic
from experiments.models import TrainingRecord
from requests_app.choices import RequestState
from requests_app.models import Comment, Transition
from tests.decision_pages import decide
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
        (S.APPROVED, "operator", "hold", "Account permission problem", S.ON_HOLD),
        (S.ON_HOLD, "operator", "resume", "", S.APPROVED),
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


def test_approve_leads_to_its_decision_page_and_is_taken_there(
    client, experiment, template, liaison, operator
):
    request = new_request(experiment, liaison)
    client.force_login(operator)
    decision_page = reverse("monitoring:request_what_if", args=[request.number])
    html = client.get(request.get_absolute_url()).content.decode()
    assert f'<form method="get" action="{decision_page}"' in html
    # Posted straight (a form of before): led to the decision page, nothing changed.
    response = act(client, request, "approve", "physics first")
    assert response["Location"] == f"{decision_page}?note=physics+first"
    request.refresh_from_db()
    assert request.state == S.SUBMITTED
    # Its go-ahead approves, and the approval records the effect shown.
    page = client.get(decision_page, {"note": "physics first"})
    assert 'value="physics first"' in page.content.decode()  # the note typed is carried
    response = decide(client, decision_page, {"note": "physics first"}, note="physics first")
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.state == S.APPROVED
    record = Transition.objects.filter(request=request).latest("id")
    assert (record.action, record.actor, record.note) == ("approve", operator, "physics first")
    assert "effect_shown" in record.changes
    assert any(request.number in m for m in texts(response))


def confirm_url(request, action):
    return reverse("requests:confirm", args=[request.number, action])


@pytest.mark.parametrize(
    ("state", "who", "action", "after"),
    [
        (S.SUBMITTED, "liaison", "cancel", S.CANCELLED),
        (S.APPROVED, "operator", "cancel", S.CANCELLED),
        (S.SUBMITTED, "operator", "reject", S.REJECTED),
    ],
)
def test_irreversible_actions_ask_for_a_reason_and_a_confirmation(
    client, experiment, template, liaison, operator, state, who, action, after
):
    request = new_request(experiment, liaison, state)
    user = {"liaison": liaison, "operator": operator}[who]
    client.force_login(user)
    # The request page offers a link to the confirmation step, not a one-click form.
    html = client.get(request.get_absolute_url()).content.decode()
    assert f'href="{confirm_url(request, action)}"' in html
    assert f'name="action" value="{action}"' not in html
    # A direct post of the action (an old page, a script) only leads to the question.
    response = act(client, request, action, "typed on the old page")
    assert response.status_code == 302 and response["Location"] == confirm_url(request, action)
    request.refresh_from_db()
    assert request.state == state

    page = client.get(confirm_url(request, action))
    assert page.status_code == 200
    html = page.content.decode()
    assert "This cannot be undone" in html
    assert "typed on the old page" in html  # the note typed comes along
    assert f'action="{confirm_url(request, action)}"' in html

    verb = {"cancel": "cancel", "reject": "reject"}[action]
    refused = client.post(confirm_url(request, action), {"note": "   "})
    assert refused.status_code == 400
    assert refused.context["form"].errors["note"] == [f"A reason is required to {verb}."]
    assert 'href="#id_note"' in refused.content.decode()
    request.refresh_from_db()
    assert request.state == state

    done = client.post(confirm_url(request, action), {"note": "Superseded by MCC6"})
    assert done.status_code == 302 and done["Location"] == request.get_absolute_url()
    request.refresh_from_db()
    assert request.state == after
    record = Transition.objects.filter(request=request).latest("id")
    assert (record.action, record.actor, record.note) == (action, user, "Superseded by MCC6")
    assert f"{request.number} is now {after.label.lower()}." in texts(done)


def test_confirmation_step_is_for_those_who_may_act(
    client, experiment, liaison, physicist, other_liaison, operator, template
):
    request = new_request(experiment, liaison)
    url = confirm_url(request, "cancel")
    client.force_login(physicist)
    assert client.get(url).status_code == 403
    assert client.post(url, {"note": "x"}).status_code == 403
    assert act(client, request, "cancel").status_code == 403
    client.force_login(other_liaison)
    assert client.get(url).status_code == 404
    client.force_login(liaison)
    assert client.get(confirm_url(request, "reject")).status_code == 403  # operators reject
    assert client.get(confirm_url(request, "approve")).status_code == 404  # no such step
    request.refresh_from_db()
    assert request.state == S.SUBMITTED


def test_confirmation_of_what_can_no_longer_happen_goes_back(client, experiment, liaison, template):
    request = new_request(experiment, liaison, S.CANCELLED)
    client.force_login(liaison)
    response = client.post(confirm_url(request, "cancel"), {"note": "again"})
    assert response.status_code == 302 and response["Location"] == request.get_absolute_url()
    assert f"{request.number} is cancelled: it cannot be cancelled now." in texts(response)


def test_note_required_is_refused_without_one(client, experiment, liaison, operator, template):
    request = new_request(experiment, liaison, S.APPROVED)
    client.force_login(operator)
    response = act(client, request, "hold", "   ")
    assert response.status_code == 302
    assert "A note is required to hold." in texts(response)
    request.refresh_from_db()
    assert request.state == S.APPROVED


def test_refused_approval_redirects_with_the_reasons_and_keeps_the_note(
    client, experiment, liaison, operator, template
):
    """POST/redirect/GET: the refusal is shown by messages; a reload posts nothing again."""
    TrainingRecord.objects.all().delete()
    request = new_request(experiment, liaison)
    client.force_login(operator)
    # The decision page offers no go-ahead to an ineligible request; one posted anyway
    # (signed for this approval, as a page of before would) is refused by the service.
    effect = sign_effect({"change": "approve", "request": request.pk}, [])
    response = client.post(
        reverse("requests:action", args=[request.number]),
        {"action": "approve", "note": "checked with the group conveners", "effect": effect},
    )
    assert response.status_code == 302
    assert response["Location"] == request.get_absolute_url() + "#actions-heading"
    page = client.get(response["Location"])
    html = page.content.decode()
    assert "not eligible under the service level agreement" in html
    assert "no training recorded on job submission" in html
    assert 'value="checked with the group conveners"' in html
    # The note is given back once: a later visit starts empty.
    assert (
        'value="checked with the group conveners"'
        not in client.get(request.get_absolute_url()).content.decode()
    )
    request.refresh_from_db()
    assert request.state == S.SUBMITTED


def test_acting_on_a_request_someone_else_moved_says_what_happened(
    client, experiment, liaison, operator, admin_user, template
):
    request = new_request(experiment, liaison)
    client.force_login(admin_user)
    decision_page = reverse("monitoring:request_what_if", args=[request.number])
    assert decide(client, decision_page).status_code == 302
    request.refresh_from_db()
    assert request.state == S.APPROVED
    client.force_login(operator)
    response = act(client, request, "request_info", "more please")
    assert response.status_code == 302
    html = client.get(response["Location"]).content.decode()
    assert "the request is approved" in html
    assert "boss" in html  # who did it


def test_unknown_action_is_refused(client, experiment, liaison, operator, template):
    request = new_request(experiment, liaison)
    client.force_login(operator)
    response = act(client, request, "schedule")
    assert response.status_code == 302
    assert texts(response)
    request.refresh_from_db()
    assert request.state == S.SUBMITTED


def test_checklist_comes_before_the_actions_and_blocks_approve(
    client, experiment, liaison, operator, template
):
    TrainingRecord.objects.all().delete()
    request = new_request(experiment, liaison)
    client.force_login(operator)
    response = client.get(request.get_absolute_url())
    html = response.content.decode()
    assert html.index('id="eligibility-heading"') < html.index('id="actions-heading"')
    (approve,) = [a for a in response.context["actions"] if a["name"] == "approve"]
    assert "no training recorded on job submission" in approve["blocked"]
    form = html[html.index('id="note-approve"') :]
    form = form[: form.index("</form>")]
    assert 'disabled aria-describedby="blocked-approve">Approve…</button>' in form
    assert "no training recorded on job submission" in form
    # The other decisions stay open: asking for information is how it gets fixed.
    assert 'value="request_info"' in html

    # Once eligible, Approve is a live button.
    TrainingRecord.objects.create(
        experiment=experiment, held_on=dt.date(2026, 1, 15), topics=list(TrainingTopic.values)
    )
    html = client.get(request.get_absolute_url()).content.decode()
    form = html[html.index('id="note-approve"') :]
    form = form[: form.index("</form>")]
    assert "disabled" not in form and ">Approve…</button>" in form


def test_who_can_fix_it_links_to_where_each_item_is_fixed(
    client, experiment, liaison, operator, admin_user, template
):
    TrainingRecord.objects.all().delete()
    request = new_request(experiment, liaison, ticket="not-a-ticket")
    training = reverse("experiments:training_new") + f"?experiment={experiment.pk}"
    client.force_login(operator)
    html = client.get(request.get_absolute_url()).content.decode()
    assert f'<a href="{training}">Record a training session</a>' in html
    # Only the liaison edits the ticket, once asked: the operator is led to the question.
    assert '<a href="#note-request_info">Ask the liaison for information</a>' in html
    assert "/admin/" not in html  # operators are not administrators
    # The training page opens on the request's experiment.
    form = client.get(training).context["form"]
    assert form["experiment"].value() == experiment.pk

    client.force_login(admin_user)
    html = client.get(request.get_absolute_url()).content.decode()
    assert f'<a href="{training}">Record a training session</a>' in html

    # The liaison, once the request is back with them, is led to the edit page.
    client.force_login(operator)
    act(client, request, "request_info", "Fix the ticket")
    client.force_login(liaison)
    html = client.get(request.get_absolute_url()).content.decode()
    edit = reverse("requests:edit", args=[request.number])
    assert f'<a href="{edit}">Correct the ticket reference</a>' in html
    assert training not in html  # not a page of theirs


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


def test_a_failing_forecast_never_breaks_the_page(client, operator, experiment, monkeypatch):
    from requests_app import extensions
    from tests.factories import ProductionRequestFactory

    def broken(request):
        raise ZeroDivisionError("a forecast that fails")

    monkeypatch.setattr(extensions, "_request_forecaster", [broken])
    obj = ProductionRequestFactory(experiment=experiment, state="approved")
    client.force_login(operator)
    response = client.get(obj.get_absolute_url())
    assert response.status_code == 200
    assert b"Deadline forecast" not in response.content

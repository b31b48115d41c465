"""The operators' triage queue: who sees it, order, filters, bulk actions and their results."""

import datetime as dt
import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from experiments.models import TrainingRecord
from requests_app.choices import Priority, RequestState
from tests.factories import PhysicsGroupFactory
from tests.requests_app.builders import make_request, qualify

S = RequestState
TRIAGE = reverse("requests:triage")


@pytest.fixture
def template(experiment, liaison):
    return qualify(experiment, liaison)


def due(days):
    return timezone.localdate() + dt.timedelta(days=days)


def pick_input(html: str, request) -> str:
    """The tick box of ``request`` in the queue, as rendered."""
    match = re.search(rf'<input [^>]*id="pick-{request.pk}"[^>]*>', html)
    assert match, f"no tick box for {request.number}"
    return match.group(0)


def numbers(response):
    return [row.record.number for row in response.context["page"].object_list]


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def bulk(client, ids, action, note="", assignee="", query=""):
    data = {"ids": [str(i) for i in ids], "bulk-action": action, "bulk-note": note}
    data["bulk-assignee"] = str(assignee)
    return client.post(TRIAGE + query, data)


def test_operators_only(client, liaison, physicist, operator):
    assert client.get(TRIAGE).status_code == 302
    for user in (liaison, physicist):
        client.force_login(user)
        assert client.get(TRIAGE).status_code == 403
        assert client.post(TRIAGE, {}).status_code == 403
    client.force_login(operator)
    assert client.get(TRIAGE).status_code == 200


def test_default_queue_is_submitted_and_needs_info(client, experiment, liaison, operator, template):
    waiting = {
        make_request(experiment, liaison, S.SUBMITTED).number,
        make_request(experiment, liaison, S.NEEDS_INFO).number,
    }
    for state in (S.DRAFT, S.APPROVED, S.REJECTED):
        make_request(experiment, liaison, state)
    client.force_login(operator)
    assert set(numbers(client.get(TRIAGE))) == waiting


def test_most_urgent_first_deadline_then_priority(client, experiment, liaison, operator, template):
    late_low = make_request(
        experiment, liaison, S.SUBMITTED, deadline=due(20), priority=Priority.LOW
    )
    soon_normal = make_request(
        experiment, liaison, S.SUBMITTED, deadline=due(3), priority=Priority.NORMAL
    )
    soon_critical = make_request(
        experiment, liaison, S.SUBMITTED, deadline=due(3), priority=Priority.CRITICAL
    )
    soon_high = make_request(experiment, liaison, S.NEEDS_INFO, deadline=due(3), priority="high")
    overdue = make_request(experiment, liaison, S.SUBMITTED, deadline=due(-1), priority="low")
    client.force_login(operator)
    assert numbers(client.get(TRIAGE)) == [
        overdue.number,
        soon_critical.number,
        soon_high.number,
        soon_normal.number,
        late_low.number,
    ]


def test_filters(client, experiment, other_experiment, liaison, other_liaison, operator, template):
    qualify(other_experiment, other_liaison)
    supernova = PhysicsGroupFactory(experiment=experiment, slug="supernova")
    ours = make_request(experiment, liaison, S.SUBMITTED)
    theirs = make_request(other_experiment, other_liaison, S.SUBMITTED)
    in_group = make_request(experiment, liaison, S.SUBMITTED)
    in_group.physics_group = supernova
    in_group.save()
    mine = make_request(experiment, liaison, S.NEEDS_INFO, assignee=operator)
    approved = make_request(experiment, liaison, S.APPROVED)
    client.force_login(operator)

    def shown(**query):
        return set(numbers(client.get(TRIAGE, query)))

    assert shown(experiment="sbnd") == {theirs.number}
    assert shown(physics_group=supernova.id) == {in_group.number}
    assert shown(state="needs_info") == {mine.number}
    assert shown(state=["approved", "needs_info"]) == {approved.number, mine.number}
    assert shown(assignee="me") == {mine.number}
    assert shown(assignee=str(operator.pk)) == {mine.number}
    assert shown(assignee="none") == {ours.number, theirs.number, in_group.number}


def test_pagination(client, experiment, liaison, operator, template):
    for _ in range(55):
        make_request(experiment, liaison, S.SUBMITTED, samples=0)
    client.force_login(operator)
    first = client.get(TRIAGE)
    assert len(numbers(first)) == 50
    second = client.get(TRIAGE, {"page": 2})
    assert len(numbers(second)) == 5
    assert not set(numbers(first)) & set(numbers(second))


def test_bulk_approve_reports_each_request(
    client, experiment, other_experiment, liaison, other_liaison, operator, template
):
    qualify(other_experiment, other_liaison)
    TrainingRecord.objects.filter(experiment=other_experiment).delete()
    eligible = make_request(experiment, liaison, S.SUBMITTED)
    ineligible = make_request(other_experiment, other_liaison, S.SUBMITTED)
    draft = make_request(experiment, liaison, S.DRAFT)
    client.force_login(operator)
    response = bulk(
        client, [eligible.pk, ineligible.pk, draft.pk], "approve", query="?state=submitted"
    )
    assert response.status_code == 302
    assert response["Location"] == TRIAGE + "?state=submitted"
    results = texts(response)
    assert f"{eligible.number} approved" in results
    assert any(
        m.startswith(f"{ineligible.number}: the request is not eligible")
        and "no training recorded on job submission" in m
        for m in results
    ), results
    assert any(m.startswith(f"{draft.number}: cannot approve") for m in results), results
    assert "approve: 1 of 3 done." in results
    for request, state in ((eligible, S.APPROVED), (ineligible, S.SUBMITTED), (draft, S.DRAFT)):
        request.refresh_from_db()
        assert request.state == state


def test_bulk_reject_needs_one_note_for_all(client, experiment, liaison, operator, template):
    first = make_request(experiment, liaison, S.SUBMITTED)
    second = make_request(experiment, liaison, S.NEEDS_INFO)
    client.force_login(operator)
    response = bulk(client, [first.pk, second.pk], "reject")
    assert response.status_code == 400
    assert response.context["bulk"].errors["note"] == ["A note is required to reject."]
    first.refresh_from_db()
    assert first.state == S.SUBMITTED

    response = bulk(client, [first.pk, second.pk], "reject", note="Out of scope for MCC5.0")
    assert {f"{first.number} rejected", f"{second.number} rejected"} <= set(texts(response))
    for request in (first, second):
        request.refresh_from_db()
        assert request.state == S.REJECTED
        assert request.transitions.latest("id").note == "Out of scope for MCC5.0"


def test_a_refused_bulk_reject_keeps_the_action_the_ticks_and_the_note(
    client, experiment, liaison, operator, template
):
    """The refused Reject comes back as a Reject: applying again cannot approve."""
    first = make_request(experiment, liaison, S.SUBMITTED)
    second = make_request(experiment, liaison, S.SUBMITTED)
    other = make_request(experiment, liaison, S.SUBMITTED)
    client.force_login(operator)
    response = client.post(
        TRIAGE + "?state=submitted",
        {"ids": [first.pk, second.pk], "bulk-action": "reject", "bulk-note": "  "},
    )
    assert response.status_code == 400
    html = response.content.decode()
    # The error at the top of the bulk form names the field and what is missing.
    summary = html[html.index('id="bulk-refused"') :]
    summary = summary[: summary.index("</div>")]
    assert "Nothing was done." in summary
    assert 'href="#id_bulk-note"' in summary and "A note is required to reject." in summary
    # The action stays Reject; the ticks stay on the two requests, not on the third.
    assert '<option value="reject" selected>Reject</option>' in html
    assert '<option value="approve" selected' not in html
    for request in (first, second):
        tick = pick_input(html, request)
        assert f'value="{request.pk}"' in tick and 'name="ids"' in tick
        assert f'aria-label="Select {request.number}"' in tick and "checked" in tick
    assert "checked" not in pick_input(html, other)
    # The filters of the page are kept as well: the form posts back to the same URL.
    assert 'action="/triage/?state=submitted"' in html
    for request in (first, second, other):
        request.refresh_from_db()
        assert request.state == S.SUBMITTED

    # The second try, with the note, rejects what was ticked, nothing else.
    data = {"ids": [first.pk, second.pk], "bulk-action": "reject", "bulk-note": "Duplicate"}
    response = client.post(TRIAGE + "?state=submitted", data)
    assert response.status_code == 302
    for request, state in ((first, S.REJECTED), (second, S.REJECTED), (other, S.SUBMITTED)):
        request.refresh_from_db()
        assert request.state == state


def test_no_action_is_chosen_in_advance(client, experiment, liaison, operator, template):
    request = make_request(experiment, liaison, S.SUBMITTED)
    client.force_login(operator)
    html = client.get(TRIAGE).content.decode()
    assert '<option value="" selected>Choose an action…</option>' in html
    assert "selected>Approve" not in html
    # Ticking and applying without choosing does nothing and says what is missing.
    response = client.post(TRIAGE, {"ids": [request.pk], "bulk-note": "looks fine"})
    assert response.status_code == 400
    assert response.context["bulk"].errors["action"] == ["Choose an action."]
    html = response.content.decode()
    assert 'href="#id_bulk-action"' in html and 'value="looks fine"' in html
    request.refresh_from_db()
    assert request.state == S.SUBMITTED


def test_bulk_assign(client, experiment, liaison, operator, admin_user, template):
    requests = [make_request(experiment, liaison, S.SUBMITTED) for _ in range(2)]
    client.force_login(operator)
    response = bulk(client, [r.pk for r in requests], "assign", assignee=admin_user.pk)
    assert f"{requests[0].number} assigned to boss" in texts(response)
    for request in requests:
        request.refresh_from_db()
        assert request.assignee == admin_user


def test_bulk_needs_a_selection_and_ignores_invisible_ids(client, operator, template):
    client.force_login(operator)
    response = bulk(client, [], "approve")
    assert response.status_code == 400
    assert "Tick one or more requests in the table." in response.content.decode()
    assert response.context["bulk"]["action"].value() == "approve"
    assert "Request #999999 not found." in texts(bulk(client, [999999], "approve"))


def test_queue_page_has_labels_and_csrf(client, experiment, liaison, operator, template):
    make_request(experiment, liaison, S.SUBMITTED)
    client.force_login(operator)
    html = client.get(TRIAGE).content.decode()
    assert "csrfmiddlewaretoken" in html
    for field_id in ("id_experiment", "id_physics_group", "id_state_0", "id_assignee"):
        assert f'for="{field_id}"' in html
    for field_id in ("id_bulk-action", "id_bulk-note", "id_bulk-assignee"):
        assert f'for="{field_id}"' in html

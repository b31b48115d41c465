"""``POST /api/v1/requests/{id}/transitions/``: 200 with the new state, 403, 409, 400."""

import pytest

from requests_app.choices import RequestState as S
from requests_app.models import ProductionRequest, Transition
from requests_app.workflow import USER_ACTIONS
from tests.requests_app.builders import make_request, qualify

URL = "/api/v1/requests/"


@pytest.fixture
def template(experiment, liaison):
    return qualify(experiment, liaison)


def act(client, req, action, note=None, by_number=False):
    body = {"action": action} if note is None else {"action": action, "note": note}
    key = req.number if by_number else req.id
    return client.post(f"{URL}{key}/transitions/", body, format="json")


def test_submit_then_approve(api, experiment, liaison, operator, template):
    req = make_request(experiment, liaison)
    response = act(api(liaison), req, "submit")
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "submitted"
    assert response.json()["request"]["state"] == "submitted"
    assert response.json()["request"]["allowed_actions"] == ["cancel"]

    response = act(api(operator), req, "approve", "all in order", by_number=True)
    assert response.status_code == 200
    assert response.json()["state"] == "approved"
    assert response.json()["request"]["allowed_actions"] == ["hold", "cancel"]
    record = Transition.objects.filter(request=req).latest("id")
    assert (record.actor, record.from_state, record.to_state, record.note) == (
        operator,
        S.SUBMITTED,
        S.APPROVED,
        "all in order",
    )


@pytest.mark.parametrize("who", ["physicist", "liaison"])
def test_role_may_not_is_403(request, api, experiment, liaison, template, who):
    req = make_request(experiment, liaison, S.SUBMITTED)
    response = act(api(request.getfixturevalue(who)), req, "approve")
    assert response.status_code == 403
    assert response.json() == {"detail": "You may not approve this request.", "reasons": []}
    assert ProductionRequest.objects.get(pk=req.pk).state == S.SUBMITTED


def test_operator_may_not_submit(api, experiment, liaison, operator, template):
    req = make_request(experiment, liaison)
    assert act(api(operator), req, "submit").status_code == 403


def test_wrong_state_is_409_with_reasons(api, experiment, liaison, operator, template):
    req = make_request(experiment, liaison, S.DRAFT)
    response = act(api(operator), req, "approve")
    assert response.status_code == 409
    assert response.json()["detail"].startswith("Cannot approve: the request is draft")
    assert response.json()["reasons"] == ["approve needs the state: submitted"]


def test_not_eligible_is_409_listing_what_is_missing(api, experiment, liaison, operator, template):
    experiment.sla_accepted_on = None
    experiment.save()
    req = make_request(experiment, liaison, S.SUBMITTED, ticket="bad")
    response = act(api(operator), req, "approve")
    assert response.status_code == 409
    body = response.json()
    assert body["detail"] == "The request is not eligible under the service level agreement."
    assert body["reasons"][0] == "DUNE has no recorded SLA acceptance (date and document)"
    assert body["reasons"][1].startswith("'bad' does not match")
    assert not Transition.objects.filter(request=req).exists()


def test_second_decision_is_told_what_happened(api, experiment, liaison, operator, template):
    req = make_request(experiment, liaison, S.SUBMITTED)
    assert act(api(operator), req, "approve").status_code == 200
    response = act(api(operator), req, "reject", "too late")
    assert response.status_code == 409
    assert "approved (approve by op at" in response.json()["detail"]


@pytest.mark.parametrize("action", ["request_info", "reject"])
@pytest.mark.parametrize("note", [None, "", "   "])
def test_missing_note_is_400(api, experiment, liaison, operator, template, action, note):
    req = make_request(experiment, liaison, S.SUBMITTED)
    response = act(api(operator), req, action, note)
    assert response.status_code == 400
    assert response.json()["reasons"] == ["note: required"]
    assert ProductionRequest.objects.get(pk=req.pk).state == S.SUBMITTED


def test_hold_needs_a_reason_and_resume_goes_back(api, experiment, liaison, operator, template):
    req = make_request(experiment, liaison, S.IN_PRODUCTION)
    client = api(operator)
    assert act(client, req, "hold").status_code == 400
    held = act(client, req, "hold", "account permission problem").json()["request"]
    assert (held["state"], held["held_from"], held["hold_reason"]) == (
        "on_hold",
        "in_production",
        "account permission problem",
    )
    assert act(client, req, "resume").json()["state"] == "in_production"


@pytest.mark.parametrize("action", ["explode", "schedule", "complete", "", None])
def test_unknown_or_system_action_is_400(api, experiment, liaison, operator, template, action):
    req = make_request(experiment, liaison, S.APPROVED)
    response = act(api(operator), req, action)
    assert response.status_code == 400
    assert list(response.json()) == ["action"]
    assert ProductionRequest.objects.get(pk=req.pk).state == S.APPROVED


def test_note_too_long_is_400(api, experiment, liaison, operator, template):
    req = make_request(experiment, liaison, S.SUBMITTED)
    response = act(api(operator), req, "reject", "x" * 5001)
    assert response.status_code == 400
    assert list(response.json()) == ["note"]


def test_invisible_request_is_404(api, experiment, liaison, other_liaison, template):
    req = make_request(experiment, liaison, S.DRAFT)
    assert act(api(other_liaison), req, "cancel").status_code == 404
    assert ProductionRequest.objects.get(pk=req.pk).state == S.DRAFT


@pytest.mark.parametrize("state", S.values)
def test_allowed_actions_match_what_the_api_accepts(
    api, experiment, liaison, operator, template, state
):
    """Every action offered succeeds; every other one is refused (403 or 409)."""
    for user in (liaison, operator):
        client = api(user)
        offered = set(
            api(user)
            .get(f"{URL}{make_request(experiment, liaison, state).id}/")
            .json()["allowed_actions"]
        )
        for action in USER_ACTIONS:
            req = make_request(experiment, liaison, state)
            response = act(client, req, action, "because")
            if action in offered:
                assert response.status_code == 200, (user, action, response.json())
            else:
                assert response.status_code in (403, 409), (user, action, response.json())

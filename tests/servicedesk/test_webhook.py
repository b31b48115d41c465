"""The webhook: a signed call pulls the ticket; unsigned or badly signed calls change nothing."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from requests_app.models import ProductionRequest
from servicedesk import services, tasks
from servicedesk.models import SyncError, SyncState, TicketLink
from servicedesk.services import sync_state

from .conftest import SECRET, add_ticket, signed

pytestmark = pytest.mark.django_db
URL = "/api/v1/servicedesk/webhook/"


def post(body: bytes, **headers):
    return Client().post(URL, data=body, content_type="application/json", **headers)


def nothing_changed(snow) -> bool:
    return (
        not TicketLink.objects.exists()
        and not ProductionRequest.objects.exists()
        and not SyncState.objects.exists()
        and not SyncError.objects.exists()
        and snow.calls == []
    )


def test_signed_call_pulls_the_ticket(connector_settings, snow, world):
    add_ticket(snow, "RITM0050001")
    body, headers = signed({"number": "RITM0050001", "event": "assigned"})

    response = post(body, **headers)

    assert response.status_code == 200, response.content
    data = response.json()
    link = TicketLink.objects.get(ticket="RITM0050001")
    assert data == {
        "ticket": "RITM0050001",
        "imported": True,
        "request": link.request.number,
        "created": True,
        "adopted": False,
    }
    assert sync_state().last_webhook_at is not None
    # The desk was asked for the ticket itself: the body's other fields are not trusted.
    get = next(c for c in snow.calls if c["method"] == "GET")
    assert get["params"]["sysparm_query"] == "number=RITM0050001"


def test_signed_call_by_sys_id_and_twice_makes_one_draft(connector_settings, snow, world):
    ticket = add_ticket(snow, "RITM0050002")
    body, headers = signed({"sys_id": ticket["sys_id"]})
    assert post(body, **headers).json()["created"] is True
    again = post(body, **headers).json()
    assert again["imported"] is True and again["created"] is False
    assert ProductionRequest.objects.filter(ticket="RITM0050002").count() == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP_X_OPOS_SIGNATURE": "sha256=" + "0" * 64},
        {"HTTP_X_OPOS_SIGNATURE": "garbage"},
        {"HTTP_X_OPOS_SIGNATURE": "sha256=" + "é" * 10},
    ],
    ids=["missing", "wrong-digest", "malformed", "non-ascii"],
)
def test_unsigned_or_badly_signed_calls_get_401_and_change_nothing(
    connector_settings, snow, world, headers
):
    add_ticket(snow, "RITM0050003")
    snow.calls.clear()
    body = json.dumps({"number": "RITM0050003"}).encode()

    response = post(body, **headers)

    assert response.status_code == 401
    assert nothing_changed(snow)


def test_signature_with_another_secret_or_of_another_body_is_refused(
    connector_settings, snow, world
):
    add_ticket(snow, "RITM0050004")
    snow.calls.clear()
    body, headers = signed({"number": "RITM0050004"}, secret="not-the-secret")
    assert post(body, **headers).status_code == 401
    _, good = signed({"number": "RITM0050004"})
    tampered = json.dumps({"number": "RITM0050005"}).encode()
    assert post(tampered, **good).status_code == 401
    assert nothing_changed(snow)


def test_without_a_configured_secret_every_call_is_refused(connector_settings, snow, world):
    connector_settings.SERVICEDESK_WEBHOOK_SECRET = ""
    body, headers = signed({"number": "RITM0050006"}, secret="")
    assert post(body, **headers).status_code == 401
    assert nothing_changed(snow)


def test_ticket_of_another_group_is_not_imported(connector_settings, snow, world):
    add_ticket(snow, "RITM0050007", assignment_group=snow.other_group_id)
    body, headers = signed({"number": "RITM0050007"})
    response = post(body, **headers)
    assert response.status_code == 200
    assert response.json()["imported"] is False
    assert not TicketLink.objects.exists()


def test_bad_body_is_400(connector_settings, snow, world):
    for raw in (b"not json", json.dumps({"number": "RITM 1; DROP"}).encode()):
        body, headers = signed(raw)
        assert post(body, **headers).status_code == 400
    assert not TicketLink.objects.exists()


def test_desk_not_answering_queues_a_pull(
    connector_settings, snow, world, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(tasks.pull_ticket, "delay", lambda **kw: queued.append(kw))
    snow.fail_status = 503
    body, headers = signed({"number": "RITM0050008"})

    with django_capture_on_commit_callbacks(execute=True):
        response = post(body, **headers)

    assert response.status_code == 202
    assert queued == [{"number": "RITM0050008", "sys_id": ""}]


def test_the_queued_pull_task_imports_the_ticket(connector_settings, snow, world):
    add_ticket(snow, "RITM0050009")
    assert tasks.pull_ticket(number="RITM0050009").startswith("DUNE-")
    assert tasks.pull_ticket(number="RITM9999999") == "not imported"


def test_signature_helpers_round_trip():
    body = b'{"number": "RITM0000001"}'
    header = services.sign_body(body, SECRET)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert services.signature_valid(body, header, SECRET)
    assert not services.signature_valid(body + b" ", header, SECRET)
    assert not services.signature_valid(body, None, SECRET)
    assert not services.signature_valid(body, header, "")

"""Pull: a ticket whose due date is out of bounds is refused with the reason, alone."""

from __future__ import annotations

import pytest

from common import limits
from requests_app.models import ProductionRequest
from servicedesk import services
from servicedesk.models import SyncError, TicketLink

from .conftest import add_ticket, signed

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("time_zone", ["UTC", "Asia/Tokyo", "America/Chicago"])
def test_a_ticket_due_9999_is_refused_with_the_reason_and_the_others_import(
    connector_settings, snow, world, settings, time_zone
):
    # East of UTC, the ticket's last instant is not even a date in the site's zone.
    settings.TIME_ZONE = time_zone
    add_ticket(snow, "RITM0010101", due_date="9999-12-31 23:59:59")
    add_ticket(snow, "RITM0010102")

    result = services.pull_tickets()

    assert result.skipped == ["RITM0010101"]
    assert len(result.created) == 1
    assert TicketLink.objects.filter(ticket="RITM0010102").exists()
    assert not ProductionRequest.objects.filter(ticket="RITM0010101").exists()
    error = SyncError.objects.get(ticket="RITM0010101")
    assert error.message.startswith("intake refused the draft: deadline: ")
    assert "too far ahead" in error.message
    assert f"at most {limits.deadline_horizon_days()} days" in error.message
    assert "OPOS_DEADLINE_HORIZON_DAYS" in error.message


def test_a_refused_ticket_imports_once_its_due_date_is_corrected(connector_settings, snow, world):
    ticket = add_ticket(snow, "RITM0010103", due_date="9999-12-31 12:00:00")
    assert services.pull_tickets().skipped == ["RITM0010103"]

    due = limits.latest_deadline()
    ticket["due_date"] = f"{due} 12:00:00"
    result = services.pull_tickets(full=True)

    assert len(result.created) == 1 and not result.skipped
    assert TicketLink.objects.get(ticket="RITM0010103").request.deadline == due


def test_a_ticket_with_a_nul_character_is_refused_with_the_reason(connector_settings, snow, world):
    add_ticket(snow, "RITM0010104", short_description="MCC5.0\x00 production")
    add_ticket(snow, "RITM0010105")

    result = services.pull_tickets()

    assert result.skipped == ["RITM0010104"] and len(result.created) == 1
    error = SyncError.objects.get(ticket="RITM0010104")
    assert error.message == "intake refused the draft: title: NUL characters are not allowed"


@pytest.mark.parametrize(
    "body",
    [
        b'{"number": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        b'{"number": "RITM\\u00000001"}',
        b'{"number": 1' + b"0" * 40 + b"}",
    ],
)
def test_a_signed_webhook_body_out_of_bounds_is_a_400(connector_settings, snow, world, body):
    from django.test import Client

    raw, headers = signed(body)

    response = Client().post(
        "/api/v1/servicedesk/webhook/", data=raw, content_type="application/json", **headers
    )

    assert response.status_code == 400, response.content
    assert not ProductionRequest.objects.exists()

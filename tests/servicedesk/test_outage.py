"""Outages: the request moves on, the outbox keeps the note, a later retry delivers it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from requests_app import services as intake
from requests_app.choices import RequestState
from servicedesk import services, tasks
from servicedesk.choices import PushState
from servicedesk.connector import TransientServiceDeskError
from servicedesk.models import Push, SyncError
from servicedesk.services import push as push_module

from .conftest import add_ticket, later

pytestmark = pytest.mark.django_db


def test_desk_answering_503_keeps_the_push_and_the_transition_stands(linked, snow, world):
    request, ticket = linked
    snow.fail_status = 503

    request = intake.transition(request, "submit", world.liaison)  # never touches the desk
    assert request.state == RequestState.SUBMITTED
    result = services.sync_outbound()

    assert result.retrying == 1 and result.sent == 0
    push = Push.objects.get()
    assert push.state == PushState.PENDING and push.attempts == 1
    assert push.next_attempt_at > timezone.now() + dt.timedelta(seconds=20)
    assert "HTTP 503" in push.last_error
    assert SyncError.objects.filter(operation="push", ticket="RITM0030001").exists()

    # The desk is back, but the row waits for its backoff...
    snow.fail_status = None
    assert services.deliver_pushes().sent == 0
    # ...and is delivered once it is due.
    assert services.deliver_pushes(now=later()).sent == 1
    assert Push.objects.get().state == PushState.SENT
    assert len(snow.work_notes(ticket["sys_id"])) == 1


def test_desk_down_keeps_the_push_until_it_comes_back(linked, snow, world):
    request, ticket = linked
    snow.down()

    intake.transition(request, "submit", world.liaison)
    intake.transition(request, "reject", world.operator, note="Not ours")
    result = services.sync_outbound()

    assert result.retrying == 1  # the pass stops at the first transient error
    assert "unreachable" in result.stopped_on
    assert Push.objects.filter(state=PushState.PENDING).count() == 2

    snow.up()  # same port
    assert services.deliver_pushes(now=later()).sent == 2
    notes = snow.work_notes(ticket["sys_id"])
    assert "submit by" in notes[0] and "reject by" in notes[1]  # in order
    assert snow.ticket(ticket["sys_id"])["state"] == "4"


def test_a_tickets_later_note_waits_for_the_earlier_one(linked, snow, world):
    request, ticket = linked
    intake.transition(request, "submit", world.liaison)
    services.collect_pushes()
    first = Push.objects.get()
    Push.objects.filter(pk=first.pk).update(
        attempts=3, next_attempt_at=timezone.now() + dt.timedelta(minutes=10)
    )
    intake.transition(request, "reject", world.operator, note="No")
    services.collect_pushes()

    assert services.deliver_pushes().sent == 0  # the reject must not overtake the submit
    assert services.deliver_pushes(now=later()).sent == 2
    assert snow.ticket(ticket["sys_id"])["state"] == "4"


def test_backoff_grows_exponentially_with_jitter(connector_settings):
    config = services.pull.load_config()
    delays = [push_module.backoff(n, config).total_seconds() for n in range(1, 8)]
    for n, delay in enumerate(delays, start=1):
        expected = min(30 * 2 ** (n - 1), 3600)
        assert 0.8 * expected <= delay <= 1.2 * expected


def test_too_many_transient_failures_give_up(linked, snow, world, connector_settings):
    connector_settings.SERVICEDESK_PUSH_MAX_ATTEMPTS = 2
    request, _ = linked
    snow.fail_status = 502
    intake.transition(request, "submit", world.liaison)
    services.sync_outbound()
    services.deliver_pushes(now=later(3))
    push = Push.objects.get()
    assert push.state == PushState.FAILED and "gave up after 2 attempts" in push.last_error


def test_a_refusal_fails_the_push_and_an_operator_retry_sends_it(
    linked,
    snow,
    world,
    connector_settings,
):
    request, ticket = linked
    connector_settings.SERVICENOW_PASSWORD = "wrong"
    intake.transition(request, "submit", world.liaison)

    result = services.sync_outbound()

    assert result.failed == 1
    push = Push.objects.get()
    assert push.state == PushState.FAILED and "401" in push.last_error
    assert "User Not Authenticated" in push.last_error

    connector_settings.SERVICENOW_PASSWORD = snow.password  # the operator fixes the setting
    assert services.retry_failed_pushes() == 1
    assert services.deliver_pushes().sent == 1
    assert len(snow.work_notes(ticket["sys_id"])) == 1


def test_a_deleted_ticket_fails_its_push(linked, snow, world):
    request, ticket = linked
    del snow.tables["sc_req_item"][ticket["sys_id"]]
    intake.transition(request, "submit", world.liaison)
    assert services.sync_outbound().failed == 1
    assert "404" in Push.objects.get().last_error


def test_a_claimed_push_is_not_sent_by_a_second_worker(linked, snow, world):
    """The lease: while one worker sends a row, another pass skips it."""
    request, ticket = linked
    intake.transition(request, "submit", world.liaison)
    services.collect_pushes()
    inner = []

    class SlowConnector:
        def post_update(self, sys_id, work_note, state=""):
            inner.append(services.deliver_pushes())  # a second worker, meanwhile
            snow.ticket(sys_id)["_journal"].append(work_note)

        def close(self):
            pass

    result = services.deliver_pushes(connector=SlowConnector())

    assert result.sent == 1 and inner[0].sent == 0
    assert len(snow.work_notes(ticket["sys_id"])) == 1


def test_pulling_during_an_outage_is_recorded_and_retried_by_the_next_run(
    connector_settings, snow, world
):
    add_ticket(snow, "RITM0040001")
    snow.fail_status = 503
    with pytest.raises(TransientServiceDeskError):
        services.pull_tickets()
    assert SyncError.objects.filter(operation="pull").exists()
    assert tasks.pull_tickets().startswith("pull failed")

    snow.fail_status = None
    assert "1 drafts created" in tasks.pull_tickets()


def test_a_desk_that_answers_html_is_transient(connector_settings, snow, world, monkeypatch):
    """A hibernating instance answers 200 with an HTML page: retry later, don't fail."""
    import httpx

    from servicedesk.conf import load_config
    from servicedesk.servicenow import ServiceNowConnector

    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, text="<html>Instance hibernating</html>")
    )
    connector = ServiceNowConnector(load_config(), transport=transport)
    with pytest.raises(TransientServiceDeskError, match="without JSON"):
        connector.post_update("a" * 32, "note")

"""The sync-health page: operators see last syncs, the outbox and errors; others don't."""

from __future__ import annotations

import pytest
from django.test import Client

from requests_app import services as intake
from servicedesk import services
from servicedesk.choices import PushState
from servicedesk.models import Push

from .conftest import add_ticket

pytestmark = pytest.mark.django_db
URL = "/servicedesk/health/"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_disabled_connector_says_so(settings, world):
    settings.SERVICENOW_INSTANCE_URL = ""
    page = client_for(world.operator).get(URL)
    assert page.status_code == 200
    text = page.content.decode()
    assert "The service-desk connector is off" in text
    assert "SERVICENOW_INSTANCE_URL" in text


def test_only_operators(connector_settings, world):
    assert client_for(world.liaison).get(URL).status_code == 403
    assert client_for(world.physicist).get(URL).status_code == 403
    anonymous = Client().get(URL)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    assert client_for(world.liaison).post(URL + "retry/").status_code == 403


def test_shows_last_sync_pending_pushes_and_errors(
    connector_settings, snow, world, linked, django_assert_max_num_queries
):
    add_ticket(snow, "RITM0060001")
    services.pull_tickets()
    request, _ = linked
    snow.fail_status = 503
    intake.transition(request, "submit", world.liaison)
    services.sync_outbound()

    client = client_for(world.operator)
    with django_assert_max_num_queries(20):
        page = client.get(URL)

    text = page.content.decode()
    assert page.status_code == 200
    assert "Needs attention" in text
    assert snow.url in text
    assert "Last successful pull" in text and "never" in text  # no push got through yet
    assert "<strong>2</strong> pending pushes" in text  # the new draft and the submit
    assert "HTTP 503" in text  # last errors
    assert "RITM0060001" in text  # recently linked


def test_operator_buttons(connector_settings, snow, world, linked):
    request, ticket = linked
    connector_settings.SERVICENOW_PASSWORD = "wrong"
    intake.transition(request, "submit", world.liaison)
    services.sync_outbound()
    assert Push.objects.get().state == PushState.FAILED
    client = client_for(world.operator)
    assert "Failed pushes" in client.get(URL).content.decode()

    connector_settings.SERVICENOW_PASSWORD = snow.password
    response = client.post(URL + "retry/", follow=True)
    assert "1 failed pushes are queued again" in response.content.decode()
    response = client.post(URL + "send/", follow=True)
    assert "Sent 1" in response.content.decode()
    assert len(snow.work_notes(ticket["sys_id"])) == 1

    add_ticket(snow, "RITM0060002")
    response = client.post(URL + "pull/", follow=True)
    assert "1 drafts created" in response.content.decode()


def test_pull_button_reports_an_unreachable_desk(connector_settings, snow, world):
    snow.down()
    response = client_for(world.operator).post(URL + "pull/", follow=True)
    assert "The service desk did not answer" in response.content.decode()
    snow.up()

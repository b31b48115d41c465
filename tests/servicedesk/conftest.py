"""Fixtures: a local fake ServiceNow, connector settings pointing at it, a small intake world."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pytest

from servicedesk.models import TicketLink
from servicedesk.services import sign_body
from tests.factories import (
    PhysicsGroupFactory,
    ProductionRequestFactory,
    SampleFactory,
    UserFactory,
    grant,
)

from .fake_servicenow import FakeServiceNow

GROUP = "OPOS Production"
SECRET = "webhook-secret"


@pytest.fixture
def snow():
    """A running fake ServiceNow on 127.0.0.1 (random port); stopped after the test."""
    fake = FakeServiceNow().up()
    fake.group_id = fake.add_group(GROUP)
    fake.other_group_id = fake.add_group("Network Team")
    yield fake
    fake.down()


@pytest.fixture
def connector_settings(settings, snow):
    """Point the connector at the fake, with basic auth and the DUNE mapping."""
    settings.SERVICENOW_INSTANCE_URL = snow.url
    settings.SERVICENOW_USER = snow.user
    settings.SERVICENOW_PASSWORD = snow.password
    settings.SERVICENOW_TOKEN = ""
    settings.SERVICENOW_TABLE = "sc_req_item"
    settings.SERVICENOW_ASSIGNMENT_GROUP = GROUP
    settings.SERVICENOW_TIMEOUT = 2
    settings.SERVICENOW_REQUESTER_EMAIL_FIELD = ""
    settings.SERVICENOW_EXPERIMENT_FIELD = "u_experiment"
    settings.SERVICENOW_EXPERIMENT_MAP = "Deep Underground Neutrino Experiment=dune"
    settings.SERVICENOW_GROUP_FIELD = ""
    settings.SERVICENOW_STATE_MAP = ""
    settings.SERVICEDESK_DEFAULT_LIAISONS = ""
    settings.SERVICEDESK_DEFAULT_GROUPS = ""
    settings.SERVICEDESK_DEFAULT_DEADLINE_DAYS = 30
    settings.SERVICEDESK_WEBHOOK_SECRET = SECRET
    settings.SITE_URL = "https://opos.example.org"
    return settings


@dataclass
class World:
    experiment: object
    group: object
    liaison: object
    operator: object
    physicist: object


@pytest.fixture
def world(experiment, operator):
    """DUNE with a working group, a liaison (liaison@example.org), an operator, a physicist."""
    group = PhysicsGroupFactory(experiment=experiment, slug="oscillations", name="Oscillations")
    PhysicsGroupFactory(experiment=experiment, slug="supernova", name="Supernova")
    liaison = grant(
        UserFactory(username="liaison", email="liaison@example.org"), "liaison", experiment
    )
    physicist = grant(
        UserFactory(username="phys", email="phys@example.org"), "physicist", experiment
    )
    return World(experiment, group, liaison, operator, physicist)


@pytest.fixture
def linked(connector_settings, snow, world):
    """A DUNE request with one sample, filed by the liaison, linked to a ticket in the fake."""
    ticket = add_ticket(snow, "RITM0030001")
    request = ProductionRequestFactory(
        experiment=world.experiment,
        physics_group=world.group,
        requester=world.liaison,
        ticket="RITM0030001",
        title="MCC5.0 oscillations",
    )
    SampleFactory(request=request)
    TicketLink.objects.create(
        ticket="RITM0030001", sys_id=ticket["sys_id"], table="sc_req_item", request=request
    )
    return request, ticket


def add_ticket(snow: FakeServiceNow, number: str, *, email: str = "liaison@example.org", **fields):
    """A ticket assigned to the production group, raised by ``email``, for DUNE."""
    user_id = snow.add_user(email) if email else ""
    snow.labels.setdefault("u_experiment", {})["1"] = "Deep Underground Neutrino Experiment"
    values = {
        "short_description": f"MCC5.0 production for {number}",
        "description": "Oscillation samples for the MCC5.0 round.",
        "assignment_group": snow.group_id,
        "requested_for": user_id,
        "u_experiment": "1",
        "priority": "2",
    }
    values.update(fields)
    return snow.add_ticket(number, **values)


def signed(body: dict | bytes, secret: str = SECRET) -> tuple[bytes, dict]:
    """A webhook body and its signature header (as the Django test client's extra)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw, {"HTTP_X_OPOS_SIGNATURE": sign_body(raw, secret)}


def later(hours: float = 2) -> dt.datetime:
    from django.utils import timezone

    return timezone.now() + dt.timedelta(hours=hours)

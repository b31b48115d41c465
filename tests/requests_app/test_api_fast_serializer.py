"""The request serializer writes its fields directly; the output is ModelSerializer's.

``ProductionRequestSerializer.to_representation`` (and its samples') skip DRF's
field-by-field machinery for speed: every state, every role, held and assigned
requests, several samples, through the API as JSON, must read exactly as the
declared fields would have written them.
"""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from requests_app.api.serializers import ProductionRequestSerializer, SampleSerializer
from requests_app.choices import Priority, RequestState

from .builders import make_request, qualify

pytestmark = pytest.mark.django_db


def generic(serializer, instance):
    """What DRF's own field machinery writes for ``instance``."""
    return serializers.ModelSerializer.to_representation(serializer, instance)


@pytest.fixture
def one_instant(monkeypatch):
    """Both writers read the same clock: a held request's hold_seconds counts up to "now",
    and two reads a second apart (a busy machine) must not make the outputs differ."""
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now)
    return now


@pytest.fixture
def requests(experiment, liaison, operator):
    qualify(experiment, liaison)
    made = []
    for n, state in enumerate(RequestState.values):
        made.append(
            make_request(
                experiment,
                liaison,
                state,
                samples=n % 3,
                priority=Priority.values[n % len(Priority.values)],
                assignee=operator if n % 2 else None,
                submitted=dt.datetime(2026, 11, 30, 9, n, 7, 12345, tzinfo=dt.UTC) if n else None,
                description="<b>why</b> & how" if n % 4 == 0 else "",
            )
        )
    return made


@pytest.mark.parametrize("who", ["operator", "liaison", "physicist", "other_liaison"])
def test_every_state_and_role_reads_as_the_fields_write(request, requests, who, one_instant):
    user = request.getfixturevalue(who)
    http = APIRequestFactory().get("/api/v1/requests/")
    http.user = user
    context = {"request": Request(http)}
    context["request"].user = user
    for obj in requests:
        serializer = ProductionRequestSerializer(obj, context=context)
        fast = serializer.to_representation(obj)
        assert fast == generic(serializer, obj)
        assert list(fast) == list(serializer.fields)  # the same keys in the same order
        for sample in obj.samples.all():
            child = SampleSerializer(sample)
            assert child.to_representation(sample) == generic(child, sample)


def test_the_list_api_answers_the_same_json(api, operator, requests, settings, one_instant):
    """Through the API, under another time zone: the dates move like DRF moves them."""
    settings.TIME_ZONE = "Europe/Zurich"
    body = api(operator).get("/api/v1/requests/").json()["results"]
    http = APIRequestFactory().get("/api/v1/requests/")
    http.user = operator
    context = {"request": Request(http)}
    context["request"].user = operator
    by_id = {r.pk: r for r in requests}
    for row in body:
        obj = by_id[row["id"]]
        serializer = ProductionRequestSerializer(obj, context=context)
        expected = generic(serializer, obj)
        assert row == {k: v if not isinstance(v, list) else list(v) for k, v in expected.items()}
    assert any(row["submitted"] and row["submitted"].endswith("+01:00") for row in body)

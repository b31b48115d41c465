"""The daily digest: an opt-in per user, sent once a day to those who asked."""

import datetime as dt

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from monitoring.models import DigestPreference
from monitoring.services import send_digests, set_digest
from tests.factories import UserFactory, grant

from .builders import history, launch, planned_campaign, set_progress

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(experiment, operator):
    start = timezone.now() - dt.timedelta(days=2)
    campaign = launch(planned_campaign(experiment, operator, events=4800), operator, at=start)
    history(campaign, [(start + dt.timedelta(hours=h), 50 * h) for h in range(48)])
    set_progress(campaign, 0.5)
    return campaign


def test_opting_in_and_out_in_the_browser(client, physicist):
    client.force_login(physicist)
    url = reverse("monitoring:digest")
    assert client.get(url).status_code == 200
    client.post(url, {"daily": "on"})
    assert DigestPreference.objects.get(user=physicist).daily
    client.post(url, {})
    assert not DigestPreference.objects.get(user=physicist).daily


def test_the_digest_goes_to_those_who_opted_in_once_a_day(
    running, physicist, liaison, other_liaison
):
    set_digest(physicist, True)
    set_digest(other_liaison, True)  # another experiment, nothing open there
    report = send_digests()
    assert report.sent == 1
    assert [m.to for m in mail.outbox] == [[physicist.email]]
    body = mail.outbox[0].body
    assert "DUNE" in body and running.name in body
    assert "50.0% of 4.8k events" in body
    assert "+1.2k in the last 24 h" in body
    assert f"/monitoring/campaigns/{running.pk}/" in body
    assert "/monitoring/digest/" in body
    # Not twice the same day, whoever runs it again.
    assert send_digests().sent == 0
    assert len(mail.outbox) == 1
    # The next day, again.
    tomorrow = timezone.now() + dt.timedelta(days=1)
    assert send_digests(now=tomorrow).sent == 1


def test_users_without_an_address_or_opted_out_get_nothing(running, experiment):
    nobody = grant(UserFactory(username="noaddr", email=""), "physicist", experiment)
    set_digest(nobody, True)
    quiet = grant(UserFactory(username="quiet"), "physicist", experiment)
    set_digest(quiet, False)
    assert send_digests().sent == 0
    assert mail.outbox == []


def test_operators_get_every_experiment(running, operator, other_experiment):
    set_digest(operator, True)
    send_digests()
    assert "DUNE" in mail.outbox[0].body

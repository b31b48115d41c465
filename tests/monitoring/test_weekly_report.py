"""The weekly status report by email: to the experiment's liaisons (unless they opted out)
and to subscribers, once a week, with the report's sections (commitments against actuals,
the service-desk clock, CPU hours, failures by class, what is blocked)."""

import datetime as dt

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from campaigns.choices import FailureClass
from experiments.models import Membership
from monitoring.models import DigestPreference
from monitoring.services import commitments as promises
from monitoring.services.weekly import recipients, send_weekly_reports, week_start
from requests_app.models import Transition
from requests_app.services.transitions import transition
from tests.factories import UserFactory, grant

from .builders import fail_jobs

pytestmark = pytest.mark.django_db


def dune_liaisons(experiment) -> set[int]:
    """The liaisons of DUNE: the fixture's and the one who filed the round's requests."""
    return set(
        Membership.objects.filter(experiment=experiment, role="liaison").values_list(
            "user_id", flat=True
        )
    )


@pytest.fixture
def followed(round_, operator, liaison, physicist, other_liaison):
    """DUNE's round with a promise, failures, and one request on hold; SBND has nothing."""
    now = timezone.now()
    link = round_.links.select_related("request__experiment").order_by("request_id").first()
    promises.confirm(link.request, operator, promises.proposal(link.request, now), now=now)
    fail_jobs(round_, 4, FailureClass.OUT_OF_MEMORY, now - dt.timedelta(hours=5))
    # Its log as intake keeps it: submitted three hours before the operator approved it.
    submitted = now - dt.timedelta(hours=4)
    for action, src, dst, at, who in (
        ("submit", "draft", "submitted", submitted, link.request.requester),
        ("approve", "submitted", "approved", submitted + dt.timedelta(hours=3), operator),
    ):
        row = Transition.objects.create(
            request=link.request, action=action, from_state=src, to_state=dst, actor=who
        )
        Transition.objects.filter(pk=row.pk).update(created=at)
    held = round_.links.order_by("request_id").last().request
    transition(held, "hold", operator, note="Account permission problem")
    return round_


def test_liaisons_and_subscribers_get_it_once_a_week(
    followed, liaison, physicist, other_liaison, django_assert_max_num_queries
):
    DigestPreference.objects.create(user=physicist, weekly=True)
    # Six queries, plus what the one subscriber may see (their roles, the experiments),
    # however many liaisons.
    with django_assert_max_num_queries(10):
        wanted = recipients(timezone.now())
    # DUNE's liaisons by default, the physicist subscribed; SBND had nothing going on.
    liaisons = dune_liaisons(followed.experiment)
    assert liaison.pk in liaisons
    assert set(wanted) == liaisons | {physicist.pk}
    assert other_liaison.pk not in wanted

    now = timezone.now()
    result = send_weekly_reports(now)
    assert (result.sent, result.failed) == (len(wanted), 0)
    sent_to = {m.to[0] for m in mail.outbox}
    assert {liaison.email, physicist.email} <= sent_to
    assert mail.outbox[0].subject.startswith("[OPOS] Weekly status report: DUNE, week of ")

    # Again the same week (a late beat, a retry): nothing more.
    assert send_weekly_reports(now + dt.timedelta(hours=3)).sent == 0
    assert len(mail.outbox) == len(wanted)
    # The next week: again.
    assert send_weekly_reports(week_start(now) + dt.timedelta(days=7, hours=8)).sent == len(wanted)


def test_a_liaison_opts_out_and_a_physicist_in_from_the_settings_page(
    client, followed, liaison, physicist
):
    url = reverse("monitoring:digest")
    client.force_login(liaison)
    page = client.get(url)
    assert page.context["form"].initial["weekly"] is True  # a liaison gets it by default
    client.post(url, {})
    assert DigestPreference.objects.get(user=liaison).weekly is False
    client.force_login(physicist)
    assert client.get(url).context["form"].initial["weekly"] is False
    client.post(url, {"weekly": "on"})
    assert DigestPreference.objects.get(user=physicist).weekly is True
    send_weekly_reports()
    sent_to = {m.to[0] for m in mail.outbox}
    assert physicist.email in sent_to and liaison.email not in sent_to


def test_the_email_holds_the_reports_sections_as_text_and_html(followed, liaison):
    send_weekly_reports()
    (message,) = [m for m in mail.outbox if m.to == [liaison.email]]
    text = message.body
    request = followed.links.order_by("request_id").first().request
    assert "Commitments against actuals:" in text
    assert f"{request.number} {request.title}" in text and "promised" in text
    assert "Out of memory: 4 failed attempts" in text
    assert "on hold" in text and "Account permission problem" in text
    assert "Service-desk clock" in text and "CPU hours in the period" in text
    # The clock's steps by their names: the first request was answered after 3 h.
    assert "first operator response 3 h / 3 h" in text
    assert f"/monitoring/experiments/{followed.experiment.slug}/report/" in text
    (html, kind), *_ = message.alternatives
    assert kind == "text/html"
    for heading in (
        "Commitments against actuals",
        "Blockers and hold times",
        "Service-desk clock",
        "Top failure classes in this period",
        "CPU hours in this period",
    ):
        assert heading in html, heading


def test_a_user_without_an_address_is_skipped_and_others_still_get_it(followed, liaison):
    mute = grant(UserFactory(username="mute", email=""), "liaison", followed.experiment)
    result = send_weekly_reports()
    assert result.sent == len(dune_liaisons(followed.experiment)) - 1 and result.skipped == 1
    assert liaison.email in {m.to[0] for m in mail.outbox}
    assert DigestPreference.objects.get(user=mute).weekly_sent_at is None

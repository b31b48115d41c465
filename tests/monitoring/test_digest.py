"""The daily digest: an opt-in per user, sent once a day to those who asked."""

import datetime as dt

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from campaigns.choices import FailureClass, JobState
from campaigns.models import Job
from monitoring.models import DigestPreference
from monitoring.services import send_digests, set_digest
from tests.factories import UserFactory, grant

from .builders import fail_jobs, history, launch, planned_campaign, set_progress

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


def test_the_digest_names_the_failures_not_recovered_with_request_sample_stage_job_attempt(
    running, physicist
):
    """Failed attempts of the last day whose job has not succeeded since are named, with
    which request, sample, stage, job and attempt; recovered ones are not news."""
    now = timezone.now()
    killed = fail_jobs(running, 2, FailureClass.KILLED, finished=now - dt.timedelta(hours=2))
    Job.objects.filter(pk__in=killed).update(
        failure_reason="killed by SIGKILL: by the batch system for memory, or preemption"
    )
    recovered = fail_jobs(running, 1, FailureClass.CRASH, finished=now - dt.timedelta(hours=3))
    job = Job.objects.get(pk=recovered[0])
    Job.objects.create(
        stage=job.stage, index=job.index, attempt=2, parent=job, state=JobState.SUCCEEDED
    )
    set_digest(physicist, True)
    assert send_digests(now=now).sent == 1
    body = mail.outbox[0].body
    assert "Failed attempts in the last 24 h, not recovered since:" in body
    assert "- Killed (SIGKILL: memory or preemption): 2 attempts, 2 jobs gave up." in body
    first = Job.objects.select_related("stage__request", "stage__sample").get(pk=killed[-1])
    assert (
        f"e.g. {first.stage.request.number}, sample {first.stage.sample.name}, stage "
        f"{first.stage.position}. {first.stage.name}, job #{first.index}, attempt 1: "
        "exit 137 (SIGKILL: killed: by the batch system for memory, or preemption)"
    ) in body
    assert "Crashed" not in body  # its job succeeded since


def test_the_digest_says_which_work_stopped_and_why(running, physicist):
    """A stage whose jobs all gave up: the campaign line says BLOCKED with the reason,
    and the stopped stages are listed with their request."""
    from campaigns.execution import stuck
    from campaigns.models import Stage

    stage = Stage.objects.filter(campaign=running).order_by("position").first()
    left = stage.jobs_total - stage.n_succeeded
    Stage.objects.filter(pk=stage.pk).update(n_planned=0, n_ready=0, n_failed=left)
    stuck.detect_stuck()
    set_digest(physicist, True)
    mail.outbox.clear()
    assert send_digests().sent == 1
    body = mail.outbox[0].body
    reason = f"{left} jobs of {stage.name} gave up: recover"
    assert f"Blocked. Finish unknown: {reason}." in body
    assert "Work that stopped (until an operator acts):" in body
    request = stage.request
    assert f"- {request.number} in {running.name}, remaining jobs gave up: {reason}" in body

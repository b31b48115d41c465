"""The status report: progress since the last report, ETA against the deadline,
blockers with hold times, top failure classes; it prints without the page furniture."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.choices import FailureClass
from campaigns.models import Job, StuckFlag, StuckKind
from campaigns.services import campaign_action
from monitoring.models import StatusReport
from monitoring.services import status_report
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest
from requests_app.services.transitions import system_transition, transition

from .builders import fail_jobs, history, launch, planned_campaign, set_progress

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(experiment, operator):
    """Two campaigns three days in; a report was issued a day ago."""
    now = timezone.now()
    start = now - dt.timedelta(days=3)
    steady = planned_campaign(experiment, operator, events=7200, per_job=100, name="steady")
    steady = launch(steady, operator, at=start)
    history(steady, [(start + dt.timedelta(hours=h), 50 * h) for h in range(72)])
    set_progress(steady, 0.5)  # 3600 of 7200: 1200 in the last day
    paused = planned_campaign(experiment, operator, requests=2, name="paused one")
    paused = launch(paused, operator, at=start)
    history(paused, [(start + dt.timedelta(hours=h), 5 * h) for h in range(72)])
    set_progress(paused, 0.2)
    campaign_action(paused, "pause", operator, note="Storage element full.")
    held = paused.links.order_by("request_id").first().request
    system_transition(held.pk, "start", note="started")
    transition(held, "hold", operator, note="Account permission problem.")
    ProductionRequest.objects.filter(pk=held.pk).update(
        hold_reason="Account permission problem.", hold_seconds=3600
    )
    fail_jobs(steady, 4, FailureClass.OUT_OF_MEMORY, now - dt.timedelta(hours=2))
    fail_jobs(steady, 2, FailureClass.WALLTIME, now - dt.timedelta(hours=5))
    fail_jobs(steady, 7, FailureClass.STORAGE, now - dt.timedelta(days=2))  # before the period
    job = Job.objects.filter(stage__campaign=steady).last()
    StuckFlag.objects.create(
        campaign=steady, stage=job.stage, job=job, kind=StuckKind.QUEUED, reason="queued 2 d"
    )
    StatusReport.objects.create(
        experiment=experiment,
        period_start=now - dt.timedelta(days=8),
        period_end=now - dt.timedelta(days=1),
        issued_by=operator,
    )
    return steady, paused, held


def test_the_report_covers_what_happened_since_the_last_one(experiment, world):
    steady, _paused, held = world
    report = status_report(experiment)
    assert report.since == report.last_report.period_end
    rows = {row.tracked.obj.name: row for row in report.campaigns}
    # 3600 done now; the snapshot when the last report was issued said 50 * 48.
    assert rows["steady"].events_before == 2400
    assert rows["steady"].gained == 1200
    assert rows["steady"].tracked.forecast.status in ("on_track", "at_risk", "late")
    assert rows["paused one"].tracked.forecast.status == "on_hold"
    assert [r.tracked.obj.name for r in report.paused] == ["paused one"]
    assert report.paused[0].campaign_pause == "Storage element full."
    assert [r.obj.pk for r in report.on_hold] == [held.pk]
    assert report.stuck_by_campaign == {steady.pk: 1}
    # Failures of the period only, most frequent first.
    assert [(g.failure_class, g.total) for g in report.failures] == [
        (FailureClass.OUT_OF_MEMORY, 4),
        (FailureClass.WALLTIME, 2),
    ]


def test_the_report_page_says_it_in_words(client, experiment, physicist, world):
    _steady, _paused, held = world
    client.force_login(physicist)
    page = client.get(reverse("monitoring:report", args=[experiment.slug])).content.decode()
    assert "Progress in this period" in page
    assert "+1.2k events" in page
    assert held.number in page and "Account permission problem." in page
    assert "Storage element full." in page
    assert "1 stuck job or stage" in page
    assert "Out of memory" in page and "Walltime exceeded" in page
    assert "Output area full" not in page
    assert "Mark as issued" not in page  # operators only
    assert "data-print" in page and 'class="card report-tools no-print"' in page


def test_issuing_a_report_starts_the_next_one_now(client, experiment, operator, world):
    client.force_login(operator)
    url = reverse("monitoring:report", args=[experiment.slug])
    assert "Mark as issued" in client.get(url).content.decode()
    response = client.post(url, {"since": ""})
    assert response.status_code == 302
    latest = StatusReport.objects.filter(experiment=experiment).first()
    assert latest.issued_by == operator
    assert timezone.now() - latest.period_end < dt.timedelta(minutes=1)
    again = status_report(experiment)
    assert again.since == latest.period_end
    assert all(row.gained == 0 for row in again.campaigns)


def test_a_chosen_period(client, experiment, operator, world):
    client.force_login(operator)
    url = reverse("monitoring:report", args=[experiment.slug])
    since = timezone.localtime(timezone.now() - dt.timedelta(hours=10)).strftime("%Y-%m-%dT%H:%M")
    page = client.get(url, {"since": since}).content.decode()
    assert f"From {since.replace('T', ' ')}" in page
    future = client.get(url, {"since": "2999-01-01T00:00"}).content.decode()
    assert "Choose a moment in the past." in future


def test_completed_requests_of_the_period_are_listed(experiment, world):
    steady, _paused, _held = world
    request = steady.links.first().request
    system_transition(request.pk, "start", note="started")
    system_transition(request.pk, "complete", note="done")
    assert ProductionRequest.objects.get(pk=request.pk).state == RequestState.COMPLETED
    report = status_report(experiment)
    assert [t.request_id for t in report.completed] == [request.pk]

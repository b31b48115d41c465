"""The progress endpoints' contract, and their place in the OpenAPI schema."""

import datetime as dt

import pytest
import yaml
from django.core.management import call_command
from django.utils import timezone

from campaigns.choices import JobState
from monitoring.choices import MilestoneKind, ProgressStatus
from monitoring.services import record_snapshots

from .builders import history, launch, planned_campaign, set_progress

pytestmark = pytest.mark.django_db

FIELDS = {
    "id",
    "events_done",
    "events_target",
    "percent",
    "jobs",
    "jobs_total",
    "blocked_reason",
    "attempts_retried",
    "throughput_per_hour",
    "throughput",
    "eta",
    "eta_low",
    "eta_high",
    "deadline",
    "status",
    "basis",
    "hold_seconds",
    "milestones",
    "commitments",
    "snapshots",
}


@pytest.fixture
def running(experiment, operator):
    """Launched 10 h ago, 400 events an hour since, 4000 of 10000 done now."""
    campaign = planned_campaign(experiment, operator, events=10_000, per_job=100, days=10)
    start = timezone.now() - dt.timedelta(hours=10)
    campaign = launch(campaign, operator, at=start)
    history(campaign, [(start + dt.timedelta(hours=h), 400 * h) for h in range(10)])
    request = campaign.links.first().request
    history(
        campaign,
        [(start + dt.timedelta(hours=h), 400 * h) for h in range(10)],
        level="request",
        request=request,
    )
    set_progress(campaign, 0.4, running=5)
    record_snapshots()
    return campaign


def test_campaign_progress_contract(api, operator, running):
    response = api(operator).get(f"/api/v1/campaigns/{running.pk}/progress/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == FIELDS
    assert body["id"] == running.pk
    assert (body["events_done"], body["events_target"]) == (4000, 10_000)
    assert body["percent"] == 40.0
    assert set(body["jobs"]) == set(JobState.values)
    assert body["jobs"][JobState.RUNNING] == 5
    assert body["jobs_total"] == 250
    assert body["status"] in ProgressStatus.values
    assert body["status"] == ProgressStatus.ON_TRACK
    assert body["basis"] == "measured"
    assert body["throughput_per_hour"] == pytest.approx(400, rel=0.05)
    eta = dt.datetime.fromisoformat(body["eta"])
    low = dt.datetime.fromisoformat(body["eta_low"])
    high = dt.datetime.fromisoformat(body["eta_high"])
    assert low < eta < high < dt.datetime.fromisoformat(body["deadline"])
    # 6000 events left at about 400 an hour.
    assert eta - timezone.now() == pytest.approx(dt.timedelta(hours=15), abs=dt.timedelta(hours=1))
    assert set(body["milestones"]) == set(MilestoneKind.values)
    assert body["milestones"][MilestoneKind.FIRST_RUNNING] is not None
    assert body["milestones"][MilestoneKind.ALL_EVENTS] is None
    assert len(body["snapshots"]) == 11
    assert set(body["snapshots"][0]) == {"taken_at", "events_done", "succeeded"}
    assert [w["window_hours"] for w in body["throughput"]] == [6.0, 24.0]


def test_request_progress_by_id_or_number(api, physicist, running):
    request = running.links.first().request
    by_id = api(physicist).get(f"/api/v1/requests/{request.pk}/progress/").json()
    by_number = api(physicist).get(f"/api/v1/requests/{request.number}/progress/").json()
    # "now" moved between the two calls: rates and times differ in the last digits.
    moving = {"eta", "eta_low", "eta_high", "throughput", "throughput_per_hour"}
    assert {k: v for k, v in by_id.items() if k not in moving} == {
        k: v for k, v in by_number.items() if k not in moving
    }
    assert set(by_id) == FIELDS
    assert by_id["id"] == request.pk
    assert by_id["events_target"] == 10_000
    assert by_id["milestones"][MilestoneKind.FULL_SPEED] is None  # campaign level only
    assert by_id["status"] == ProgressStatus.ON_TRACK


def test_since_narrows_the_snapshots(api, operator, running):
    since = (timezone.now() - dt.timedelta(hours=3, minutes=30)).isoformat()
    body = api(operator).get(f"/api/v1/campaigns/{running.pk}/progress/", {"since": since}).json()
    assert len(body["snapshots"]) == 4  # three of the history, and the one just recorded
    bad = api(operator).get(f"/api/v1/campaigns/{running.pk}/progress/", {"since": "soon"})
    assert bad.status_code == 400


def test_before_anything_is_done_the_answer_is_the_schedulers_estimate(api, operator, experiment):
    campaign = planned_campaign(experiment, operator)
    body = api(operator).get(f"/api/v1/campaigns/{campaign.pk}/progress/").json()
    assert body["basis"] == "estimate"
    assert body["eta"] is not None and body["eta_low"] is None and body["eta_high"] is None
    assert body["status"] == ProgressStatus.ON_TRACK
    assert body["snapshots"] == []
    assert all(v is None for v in body["milestones"].values())


def test_unknown_ids_are_404(api, operator):
    assert api(operator).get("/api/v1/campaigns/999999/progress/").status_code == 404
    assert api(operator).get("/api/v1/requests/REQ-2026-9999/progress/").status_code == 404


def test_the_endpoints_are_in_the_schema_without_warnings(tmp_path):
    path = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    schema = yaml.safe_load(path.read_text())
    for url in ("/api/v1/campaigns/{id}/progress/", "/api/v1/requests/{id}/progress/"):
        operation = schema["paths"][url]["get"]
        assert {"200", "404"} <= set(operation["responses"])
    progress = schema["components"]["schemas"]["Progress"]
    assert set(progress["properties"]) >= FIELDS
    status = schema["components"]["schemas"]["ProgressStatusEnum"]
    assert set(status["enum"]) == set(ProgressStatus.values)

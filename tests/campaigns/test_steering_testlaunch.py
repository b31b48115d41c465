"""Test launches on the local backend: N jobs of each stage first; the full launch waits for
a click (or goes on by itself); a failed test pauses the campaign with the reason."""

import pytest
from django.core import mail

from campaigns.choices import CampaignEventKind, CampaignState, JobState, LaunchPhase
from campaigns.models import Campaign, CampaignEvent, Job
from campaigns.services import (
    CampaignError,
    campaign_action,
    create_campaign,
    schedule_requests,
)
from campaigns.services.testlaunch import launch_full, update_test_settings
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest
from tests.campaigns.exec_support import DEMO_STAGES, demo_template, run_until
from tests.campaigns.factories import approved_request

pytestmark = pytest.mark.django_db(transaction=True)

FAILING = """\
import sys
print("geometry file missing", file=sys.stderr)
sys.exit(4)
"""


def planned(experiment, operator, template=None, **settings):
    template = template or demo_template(experiment)
    request = approved_request(experiment, template=template, events=60, per_job=10)
    campaign = create_campaign(
        operator, experiment, name=f"c{request.pk}", deadline=request.deadline, backend="local"
    )
    schedule_requests(campaign, [request.pk], operator)
    update_test_settings(campaign, operator, **settings)
    return campaign, request


def submitted(campaign) -> dict[str, int]:
    """Jobs of each stage that reached the batch system."""
    counts: dict[str, int] = {}
    for name in (
        Job.objects.filter(stage__campaign=campaign)
        .exclude(state__in=[JobState.PLANNED, JobState.READY])
        .values_list("stage__name", flat=True)
    ):
        counts[name] = counts.get(name, 0) + 1
    return counts


def phase(campaign) -> str:
    return Campaign.objects.get(pk=campaign.pk).test_phase


def test_test_jobs_first_then_a_click(exec_env, experiment, operator):
    operator.email = "op@example.org"
    operator.save()
    campaign, request = planned(experiment, operator, test_jobs=2)
    campaign_action(campaign, "launch", operator)
    assert phase(campaign) == LaunchPhase.TESTING

    run_until(lambda: phase(campaign) != LaunchPhase.TESTING)

    assert phase(campaign) == LaunchPhase.PASSED
    # Exactly two jobs of each stage ran; the rest waits for the click.
    assert submitted(campaign) == {"generation": 2, "simulation": 2, "reconstruction": 2}
    event = CampaignEvent.objects.get(campaign=campaign, kind=CampaignEventKind.TEST_PASSED)
    assert event.reason == "test jobs succeeded (generation: 2, reconstruction: 2, simulation: 2)"
    assert any("passed" in m.subject for m in mail.outbox if "op@example.org" in m.to)
    from campaigns.execution.submission import submit_ready

    assert submit_ready().jobs == 0  # nothing more without the click

    launch_full(campaign, operator)

    run_until(lambda: ProductionRequest.objects.get(pk=request.pk).state == RequestState.COMPLETED)
    assert submitted(campaign) == {"generation": 6, "simulation": 6, "reconstruction": 6}
    full = CampaignEvent.objects.get(campaign=campaign, kind=CampaignEventKind.FULL_LAUNCH)
    assert full.actor == operator
    with pytest.raises(CampaignError):
        launch_full(campaign, operator)  # nothing waits any more


def test_the_full_launch_goes_on_by_itself_when_configured(exec_env, experiment, operator):
    campaign, request = planned(experiment, operator, test_jobs=1, test_auto_continue=True)
    campaign_action(campaign, "launch", operator)

    run_until(lambda: ProductionRequest.objects.get(pk=request.pk).state == RequestState.COMPLETED)

    assert phase(campaign) == LaunchPhase.FULL
    kinds = list(
        CampaignEvent.objects.filter(campaign=campaign)
        .filter(kind__in=[CampaignEventKind.TEST_PASSED, CampaignEventKind.FULL_LAUNCH])
        .values_list("kind", "actor")
    )
    assert kinds == [(CampaignEventKind.TEST_PASSED, None), (CampaignEventKind.FULL_LAUNCH, None)]


def test_a_failed_test_stops_the_launch_with_the_reason(
    exec_env, experiment, operator, settings, tmp_path
):
    settings.OPOS_MAX_ATTEMPTS = 1
    script = tmp_path / "broken.py"
    script.write_text(FAILING)
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    campaign, _request = planned(experiment, operator, template=template, test_jobs=2)
    campaign_action(campaign, "launch", operator)

    run_until(lambda: phase(campaign) != LaunchPhase.TESTING)

    current = Campaign.objects.get(pk=campaign.pk)
    assert (current.state, current.test_phase) == (CampaignState.PAUSED, LaunchPhase.FAILED)
    assert current.test_result.startswith("stage generation: test job ")
    assert "exit code 4" in current.test_result
    assert submitted(campaign) == {"generation": 2}
    event = CampaignEvent.objects.get(campaign=campaign, kind=CampaignEventKind.TEST_FAILED)
    assert event.reason == current.test_result
    # Going on anyway needs a reason; with one, the campaign runs again.
    with pytest.raises(CampaignError) as refused:
        launch_full(campaign, operator)
    assert refused.value.kind == "invalid"
    launch_full(campaign, operator, "the failure is understood: expected for these seeds")
    current.refresh_from_db()
    assert (current.state, current.test_phase) == (CampaignState.ACTIVE, LaunchPhase.FULL)


def test_settings_are_checked_and_test_jobs_fixed_at_launch(exec_env, experiment, operator, api):
    campaign, _request = planned(experiment, operator)
    url = f"/api/v1/campaigns/{campaign.pk}/settings/"
    bad = api(operator).post(url, {"test_jobs": -1, "completion_pct": 101}, format="json")
    assert bad.status_code == 400
    assert set(bad.json()) == {"test_jobs", "completion_pct"}
    ok = api(operator).post(url, {"test_jobs": 3, "test_auto_continue": True}, format="json")
    assert ok.status_code == 200, ok.json()
    assert (ok.json()["test_jobs"], ok.json()["test_auto_continue"]) == (3, True)
    edit = CampaignEvent.objects.filter(campaign=campaign, kind=CampaignEventKind.EDITED).last()
    assert edit.changes == {"test_jobs": [0, 3], "test_auto_continue": [False, True]}
    campaign_action(campaign, "launch", operator)
    late = api(operator).post(url, {"test_jobs": 1}, format="json")
    assert late.status_code == 409
    launched = api(operator).post(
        f"/api/v1/campaigns/{campaign.pk}/launch-full/", {}, format="json"
    )
    assert launched.status_code == 400  # testing: going on early needs a note
    launched = api(operator).post(
        f"/api/v1/campaigns/{campaign.pk}/launch-full/", {"note": "urgent"}, format="json"
    )
    assert launched.status_code == 200 and launched.json()["test_phase"] == LaunchPhase.FULL

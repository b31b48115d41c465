"""Dead work is shown as dead: a stage whose jobs all gave up makes its request and
campaign "blocked" everywhere a status appears, with the reason and no ETA, and the
people concerned are told once (operators, the request's people, the ticket)."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.core import mail
from django.utils import timezone

from campaigns.choices import Feasibility
from campaigns.execution import stuck
from campaigns.models import Stage, StuckFlag, StuckKind
from campaigns.services.feasibility import forecast_campaigns, forecast_request
from monitoring.services.dashboards import campaign_detail
from opos_cli import render
from requests_app.models import Comment, ProductionRequest
from tests.campaigns.exec_support import DEMO_STAGES, all_final, demo_template, launch, run_until
from tests.factories import UserFactory, grant

# Every job of the stage crashes; exit 3 is retried as is, up to the attempt limit.
CRASH = """\
import sys
print("segmentation violation", file=sys.stderr)
sys.exit(3)
"""


@pytest.fixture
def gave_up(exec_env, experiment, operator, liaison, settings, tmp_path):
    """A launched campaign of 3 jobs that all crashed twice and gave up (local backend)."""
    settings.OPOS_MAX_ATTEMPTS = 2
    operator.email, liaison.email = "op@example.org", "liaison@example.org"
    operator.save()
    liaison.save()
    script = tmp_path / "crash.py"
    script.write_text(CRASH)
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    campaign, request = launch(experiment, operator, events=30, per_job=10, template=template)
    ProductionRequest.objects.filter(pk=request.pk).update(requester=liaison)
    request.refresh_from_db()
    run_until(lambda: all_final(stage__campaign=campaign), timeout=120)
    assert not Stage.objects.get(campaign=campaign).n_succeeded
    return campaign, request


@pytest.mark.django_db(transaction=True)
def test_jobs_that_all_gave_up_block_the_request_and_campaign_everywhere(
    gave_up, operator, client, api
):
    campaign, request = gave_up
    stage = Stage.objects.get(campaign=campaign)
    assert stage.n_failed == 6 and stage.jobs_total == 3  # 3 jobs, 2 attempts each
    reason = "3 jobs of generation gave up: recover"

    # The scheduler's view: plan pages, campaign list, the request page's forecast.
    plan = forecast_campaigns()[campaign.pk]
    assert (plan.status, plan.finish, plan.reason) == (Feasibility.BLOCKED, None, reason)
    assert plan.requests[request.pk].status == Feasibility.BLOCKED
    assert forecast_request(request).status == Feasibility.BLOCKED

    # The read side: the campaign's status, no sliding ETA.
    detail = campaign_detail(campaign, timezone.now())
    assert detail.forecast.status == "blocked"
    assert detail.forecast.eta is None and detail.forecast.reason == reason

    client.force_login(operator)
    pages = {
        "campaign list": "/campaigns/",
        "campaign plan": f"/campaigns/{campaign.pk}/",
        "request page": f"/requests/{request.number}/",
        "operations": "/monitoring/operations/",
        "experiment dashboard": f"/monitoring/experiments/{campaign.experiment.slug}/",
        "campaign dashboard": f"/monitoring/campaigns/{campaign.pk}/",
        "request dashboard": f"/monitoring/requests/{request.number}/",
        "report": f"/monitoring/experiments/{campaign.experiment.slug}/report/",
    }
    for name, url in pages.items():
        response = client.get(url)
        assert response.status_code == 200, name
        text = response.content.decode()
        assert "Blocked" in text, name
        assert "On track" not in text, name
    assert reason in client.get(f"/monitoring/campaigns/{campaign.pk}/").content.decode()

    rows = list(
        csv.DictReader(
            io.StringIO(
                client.get(
                    f"/monitoring/experiments/{campaign.experiment.slug}/progress.csv"
                ).content.decode()
            )
        )
    )
    by_level = {(r["level"], r["stage"]): r for r in rows}
    assert by_level[("campaign", "")]["status"] == "blocked"
    assert by_level[("campaign", "")]["blocked_reason"] == reason
    assert by_level[("request", "")]["status"] == "blocked"
    assert by_level[("stage", "generation")]["blocked_reason"] == reason

    body = api(operator).get(f"/api/v1/campaigns/{campaign.pk}/progress/").json()
    assert (body["status"], body["eta"], body["blocked_reason"]) == ("blocked", None, reason)
    body = api(operator).get(f"/api/v1/requests/{request.pk}/progress/").json()
    assert body["status"] == "blocked"
    text = render.progress({"name": campaign.name, "deadline": "2027-01-01"}, body)
    assert f"ETA       unknown: blocked: {reason}" in text and "BLOCKED" in text

    metrics = client.get("/metrics").content.decode()
    line = next(x for x in metrics.splitlines() if x.startswith("opos_campaign_blocked{"))
    assert f'campaign="{campaign.name}"' in line and line.endswith(" 1")


@pytest.mark.django_db(transaction=True)
def test_giving_up_is_announced_once_and_cleared_by_a_recovery(gave_up, operator, liaison):
    campaign, request = gave_up
    watcher = UserFactory(username="watcher", email="watch@example.org")
    grant(watcher, "physicist", campaign.experiment)
    request.watchers.add(watcher)
    mail.outbox.clear()

    report = stuck.detect_stuck()
    assert report.raised >= 1
    flag = StuckFlag.objects.open().get(kind=StuckKind.GAVE_UP)
    assert flag.reason == "3 jobs of generation gave up: recover"
    notes = list(Comment.objects.filter(request=request, author=None))
    assert len(notes) == 1
    assert "is blocked in campaign" in notes[0].body and flag.reason in notes[0].body
    to_operators = [m for m in mail.outbox if "op@example.org" in m.to]
    to_people = [m for m in mail.outbox if "liaison@example.org" in m.to]
    assert len(to_operators) == 1 and "blocked" in to_operators[0].subject
    assert len(to_people) == 1 and "watch@example.org" in to_people[0].to
    assert flag.reason in to_people[0].body

    # The next cycles raise nothing new and tell nobody again.
    mail.outbox.clear()
    stuck.detect_stuck()
    stuck.detect_stuck()
    assert mail.outbox == []
    assert Comment.objects.filter(request=request, author=None).count() == 1

    # A recovery queues new attempts: not blocked any more, the flag resolves.
    from campaigns.execution.recovery import recover_campaign

    recover_campaign(campaign, operator)
    assert (
        Stage.objects.get(campaign=campaign).n_ready
        + Stage.objects.get(campaign=campaign).n_planned
        == 3
    )
    stuck.detect_stuck()
    assert not StuckFlag.objects.open().filter(kind=StuckKind.GAVE_UP).exists()
    assert forecast_campaigns()[campaign.pk].status != Feasibility.BLOCKED
    assert campaign_detail(campaign, timezone.now()).forecast.status != "blocked"


@pytest.mark.django_db
def test_some_gave_up_while_others_still_run_is_not_yet_blocked(experiment, operator):
    from tests.monitoring.builders import launch as launch_built
    from tests.monitoring.builders import planned_campaign

    campaign = launch_built(planned_campaign(experiment, operator, events=1000), operator)
    stage = Stage.objects.filter(campaign=campaign).order_by("position").first()
    Stage.objects.filter(pk=stage.pk).update(
        n_planned=0, n_ready=0, n_running=2, n_failed=stage.jobs_total - 2
    )
    assert forecast_campaigns()[campaign.pk].status != Feasibility.BLOCKED
    Stage.objects.filter(pk=stage.pk).update(n_running=0, n_failed=stage.jobs_total)
    blocked = forecast_campaigns()[campaign.pk]
    assert blocked.status == Feasibility.BLOCKED
    assert f"{stage.jobs_total} jobs of {stage.name} gave up" in blocked.reason


@pytest.mark.django_db(transaction=True)
def test_a_stall_is_judged_by_the_stages_own_pace(
    exec_env, fake_backend, experiment, operator, settings
):
    """Jobs of a minute, none finished for 20 min: stalled, though 6 h have not passed."""
    from campaigns.execution import submission

    settings.OPOS_STUCK_STAGE_S = 6 * 3600
    settings.OPOS_STALL_FACTOR, settings.OPOS_STALL_MIN_S = 5, 900
    operator.email = "op@example.org"
    operator.save()
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    campaign, request = launch(experiment, operator, events=40, per_job=10, template=template)
    submission.submit_ready()
    stage = Stage.objects.get(campaign=campaign)
    assert stage.n_queued == 4
    now = timezone.now()
    Stage.objects.filter(pk=stage.pk).update(
        walltime_median_s=60, progress_at=now - dt.timedelta(minutes=10)
    )
    mail.outbox.clear()
    stuck.detect_stuck(now)
    assert not StuckFlag.objects.open().filter(kind=StuckKind.NO_PROGRESS).exists()

    stuck.detect_stuck(now + dt.timedelta(minutes=10))  # 20 min quiet > max(5 x 1 min, 15 min)
    flag = StuckFlag.objects.open().get(kind=StuckKind.NO_PROGRESS)
    assert "no job of generation finished for 20 min" in flag.reason
    assert "its jobs take 60 s at the median" in flag.reason
    note = Comment.objects.get(request=request, author=None)
    assert "is stalled in campaign" in note.body
    assert len([m for m in mail.outbox if "op@example.org" in m.to]) == 1
    stuck.detect_stuck(now + dt.timedelta(minutes=11))
    assert Comment.objects.filter(request=request, author=None).count() == 1


def test_stall_limits():
    assert stuck.stall_limit_s(None, 21600, 5, 900) == 21600  # nothing finished: the clock
    assert stuck.stall_limit_s(60, 21600, 5, 900) == 900  # never below the floor
    assert stuck.stall_limit_s(600, 21600, 5, 900) == 3000
    assert stuck.stall_limit_s(36000, 21600, 5, 900) == 21600  # never above the clock

"""One bad row never stops the others: a campaign whose scheduling or submission raises is
blocked with the reason and skipped, every other experiment goes on submitting, and the
fault clears itself once the step succeeds again."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail

from campaigns.choices import CampaignEventKind, JobState
from campaigns.execution import submission
from campaigns.models import Campaign, CampaignEvent, Job
from campaigns.services import planning
from requests_app.models import ProductionRequest
from tests.campaigns.exec_support import DEMO_STAGES, demo_template, launch

BROKEN_DAY = dt.date(2099, 1, 1)


@pytest.fixture
def two(exec_env, fake_backend, experiment, other_experiment, operator):
    """A launched one-stage campaign in each of two experiments."""
    operator.email = "op@example.org"
    operator.save()
    mine, _ = launch(
        experiment,
        operator,
        events=20,
        per_job=10,
        template=demo_template(experiment, DEMO_STAGES[:1]),
    )
    theirs, _ = launch(
        other_experiment,
        operator,
        events=20,
        per_job=10,
        template=demo_template(other_experiment, DEMO_STAGES[:1]),
    )
    return mine, theirs


def assert_pages_answer(client, operator, campaign: Campaign) -> None:
    """Every page listing the campaign (and everyone else's) answers, whatever its rows."""
    client.force_login(operator)
    for url in (
        "/campaigns/",
        f"/campaigns/{campaign.pk}/",
        "/monitoring/operations/",
        "/monitoring/experiments/dune/",
        "/monitoring/experiments/dune/report/",
        "/monitoring/experiments/dune/progress.csv",
        f"/monitoring/campaigns/{campaign.pk}/",
        "/metrics",
    ):
        assert client.get(url).status_code == 200, url


def queued(campaign: Campaign) -> int:
    return Job.objects.filter(stage__campaign=campaign, state=JobState.QUEUED).count()


@pytest.mark.django_db
def test_far_deadlines_do_not_stop_anyone(two, operator, client, api):
    mine, theirs = two
    far = dt.date(9999, 12, 31)
    Campaign.objects.filter(pk=mine.pk).update(deadline=far)
    ProductionRequest.objects.filter(campaign_link__campaign=mine).update(deadline=far)

    report = submission.submit_ready()
    assert report.errors == []
    assert queued(mine) == 2 and queued(theirs) == 2

    assert_pages_answer(client, operator, mine)
    assert api(operator).get(f"/api/v1/campaigns/{mine.pk}/progress/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_campaign_whose_scheduling_raises_blocks_only_itself(two, operator, client, monkeypatch):
    mine, theirs = two
    Campaign.objects.filter(pk=mine.pk).update(deadline=BROKEN_DAY)
    real = planning.deadline_moment

    def breaks_on(day):
        if day == BROKEN_DAY:
            raise OverflowError("date value out of range")
        return real(day)

    monkeypatch.setattr(planning, "deadline_moment", breaks_on)
    mail.outbox.clear()
    report = submission.submit_ready()

    assert queued(theirs) == 2, "the other experiment submits"
    assert queued(mine) == 0
    mine.refresh_from_db()
    assert mine.fault == "scheduling failed: OverflowError: date value out of range"
    assert any(str(mine.pk) in e for e in report.errors)
    events = CampaignEvent.objects.filter(campaign=mine, kind=CampaignEventKind.BLOCKED)
    assert events.count() == 1
    assert len([m for m in mail.outbox if "op@example.org" in m.to]) == 1

    # The same error next cycle: recorded once, told once.
    submission.submit_ready()
    assert events.count() == 1
    assert len([m for m in mail.outbox if "op@example.org" in m.to]) == 1

    client.force_login(operator)
    page = client.get("/campaigns/")
    assert page.status_code == 200 and "Blocked" in page.content.decode()
    page = client.get(f"/monitoring/campaigns/{mine.pk}/")
    assert page.status_code == 200 and "OverflowError" in page.content.decode()

    # Repaired (here: the fault removed): the next cycle clears the block and submits.
    monkeypatch.setattr(planning, "deadline_moment", real)
    submission.submit_ready()
    mine.refresh_from_db()
    assert mine.fault == "" and queued(mine) == 2
    assert CampaignEvent.objects.filter(campaign=mine, kind=CampaignEventKind.UNBLOCKED).exists()


@pytest.mark.django_db(transaction=True)
def test_a_stage_whose_submission_raises_blocks_only_its_campaign(two, monkeypatch):
    mine, theirs = two
    real = submission.submit_stage
    mine_stages = set(mine.stages.values_list("pk", flat=True))

    def breaks_for_mine(stage_id, limit):
        if stage_id in mine_stages:
            raise ZeroDivisionError("division by zero")
        return real(stage_id, limit)

    monkeypatch.setattr(submission, "submit_stage", breaks_for_mine)
    submission.submit_ready()
    assert queued(theirs) == 2 and queued(mine) == 0
    mine.refresh_from_db()
    assert mine.fault.startswith("submission failed: ZeroDivisionError")

    monkeypatch.setattr(submission, "submit_stage", real)
    submission.submit_ready()
    mine.refresh_from_db()
    assert mine.fault == "" and queued(mine) == 2


@pytest.mark.django_db
def test_work_too_big_to_ever_finish_is_late_not_a_crash(two, operator, client, api):
    """A row from before the input bounds: 10^12 events, two billion jobs left."""
    from campaigns.models import Stage
    from campaigns.services.feasibility import forecast_campaigns
    from requests_app.models import Sample

    mine, theirs = two
    Sample.objects.filter(request__campaign_link__campaign=mine).update(events=10**12)
    Stage.objects.filter(campaign=mine).update(jobs_total=2_000_000_000, n_ready=2_000_000_000)

    plan = forecast_campaigns()
    assert plan[mine.pk].status == "late"
    assert plan[theirs.pk].finish is not None
    submission.submit_ready()
    assert queued(theirs) == 2

    assert_pages_answer(client, operator, mine)
    body = api(operator).get(f"/api/v1/campaigns/{mine.pk}/progress/").json()
    assert body["status"] in ("late", "unknown")

"""Jobs and attempts are counted apart: a job that succeeded on its second attempt is one
succeeded job and one failed attempt; bars and totals count jobs, the failure table
counts attempts (recovered or not), and the trend does not rise on recovered attempts."""

import csv
import datetime as dt
import io
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.choices import CampaignState, FailureClass, JobState
from campaigns.execution.finalize import FinalizeReport, advance
from campaigns.models import Job, Stage
from campaigns.services import recount_stages
from monitoring.services import dashboards
from tests.campaigns.factories import GEN_SIM_RECO, workflow

from .builders import launch, planned_campaign

pytestmark = pytest.mark.django_db

HOUR = dt.timedelta(hours=1)


def run_jobs(campaign, now, fail_every=3, gave_up=()):
    """What execution leaves: every job ran; one in ``fail_every`` was killed on its first
    attempt (SIGKILL, retried with more memory) and succeeded on its second; the indexes
    in ``gave_up`` failed three times. Counters rebuilt by the service that rebuilds them."""
    stage = Stage.objects.get(campaign=campaign)
    first = list(Job.objects.filter(stage=stage).order_by("index"))
    started = now - 5 * HOUR
    retries = []
    for job in first:
        job.started, job.finished = started, started + dt.timedelta(minutes=10)
        job.host = f"wn{job.index % 4:03d}"
        job.batch_id = f"77_{job.index}"
        if job.index in gave_up or job.index % fail_every == 0:
            job.state, job.exit_code = JobState.FAILED, 137
            job.failure_class = FailureClass.KILLED
            job.failure_reason = "killed by SIGKILL; exit code 137 (SIGKILL)"
        else:
            job.state = JobState.SUCCEEDED
    Job.objects.bulk_update(
        first,
        [
            "state",
            "started",
            "finished",
            "host",
            "batch_id",
            "exit_code",
            "failure_class",
            "failure_reason",
        ],
    )
    for job in first:
        parent, attempts = job, 3 if job.index in gave_up else 2
        if job.state != JobState.FAILED:
            continue
        for attempt in range(2, attempts + 1):
            at = started + attempt * HOUR
            last = attempt == attempts and job.index not in gave_up
            retry = Job.objects.create(
                stage=stage,
                index=job.index,
                attempt=attempt,
                parent=parent,
                events=job.events,
                events_first=job.events_first,
                state=JobState.SUCCEEDED if last else JobState.FAILED,
                started=at,
                finished=at + dt.timedelta(minutes=10),
                exit_code=0 if last else 137,
                failure_class="" if last else FailureClass.KILLED,
                failure_reason="" if last else "killed by SIGKILL; exit code 137 (SIGKILL)",
                host="wn001",
                batch_id=f"78_{job.index}",
            )
            retries.append(retry)
            parent = retry
    recount_stages([stage.pk])
    done = Job.objects.filter(stage=stage, state=JobState.SUCCEEDED).count()
    Stage.objects.filter(pk=stage.pk).update(events_done=done * 100, progress_at=now)
    return stage


@pytest.fixture
def finished(experiment, operator):
    """90 jobs, 30 of them killed once and then succeeded: a completed campaign."""
    template = workflow(experiment, stages=GEN_SIM_RECO[:1])
    campaign = planned_campaign(experiment, operator, events=9000, per_job=100, template=template)
    campaign = launch(campaign, operator, at=timezone.now() - 6 * HOUR)
    stage = run_jobs(campaign, timezone.now())
    assert (stage.jobs_total, Job.objects.filter(stage=stage).count()) == (90, 120)
    report = FinalizeReport()
    advance(report)  # requests move on and the campaign completes, as after finalize
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.COMPLETED
    return campaign


def test_a_done_campaign_of_90_jobs_with_30_retried_attempts_shows_no_failed_job(
    client, operator, finished, api
):
    stage = Stage.objects.get(campaign=finished)
    assert (stage.n_succeeded, stage.n_failed, stage.retried_failed) == (90, 30, 30)
    detail = dashboards.campaign_detail(finished)
    p = detail.progress
    assert (p.jobs[JobState.SUCCEEDED], p.jobs[JobState.FAILED], p.failed) == (90, 0, 0)
    assert (p.jobs_total, p.attempts_retried, p.percent) == (90, 30, 100.0)

    client.force_login(operator)
    page = client.get(reverse("monitoring:campaign", args=[finished.pk])).content.decode()
    bar = re.search(r'<svg class="jobs-bar".*?</svg>', page, re.S).group(0)
    assert 'aria-label="Jobs by state: 90 succeeded"' in bar  # 100% done, no red
    assert "job-failed" not in bar
    assert "30 failed attempts tried again" in page
    # The failure table counts the attempts, all recovered: nothing rising.
    [group] = detail.failures
    assert (group.failure_class, group.total, group.recovered, group.gave_up) == (
        FailureClass.KILLED,
        30,
        30,
        0,
    )
    assert (group.last_day, group.trend) == (0, "none")
    assert "▲ rising" not in page and "— none open" in page
    # Its examples say which request, sample, stage, job and attempt.
    link = finished.links.select_related("request").get()
    sample = link.request.samples.get()
    example = group.examples[0]
    assert (example["stage__request__number"], example["stage__sample__name"]) == (
        link.request.number,
        sample.name,
    )
    text = (
        f"{link.request.number} · {sample.name} · 0. generation · job #{example['index']}, "
        f"attempt {example['attempt']}"
    )
    assert text in page
    assert "exit 137 (SIGKILL: killed: by the batch system for memory, or preemption)" in page

    body = api(operator).get(f"/api/v1/campaigns/{finished.pk}/progress/").json()
    assert (body["jobs"]["succeeded"], body["jobs"]["failed"], body["attempts_retried"]) == (
        90,
        0,
        30,
    )
    assert (body["percent"], body["status"]) == (100.0, "done")
    plan = client.get(reverse("campaigns:detail", args=[finished.pk])).content.decode()
    assert "90 of 90 jobs done (100%)" in plan
    rows = list(
        csv.DictReader(
            io.StringIO(
                client.get(
                    reverse("monitoring:csv", args=[finished.experiment.slug])
                ).content.decode()
            )
        )
    )
    campaign_row = next(r for r in rows if r["level"] == "campaign")
    assert (campaign_row["succeeded"], campaign_row["failed"]) == ("90", "0")


def test_a_job_that_gave_up_is_one_failed_job_and_its_attempts_are_attempts(
    client, operator, experiment
):
    template = workflow(experiment, stages=GEN_SIM_RECO[:1])
    campaign = planned_campaign(experiment, operator, events=900, per_job=100, template=template)
    campaign = launch(campaign, operator, at=timezone.now() - 6 * HOUR)
    # Index 1 failed three times (gave up); index 0, 3, 6 succeeded on their second attempt.
    run_jobs(campaign, timezone.now(), gave_up=(1,))
    detail = dashboards.campaign_detail(campaign)
    p = detail.progress
    assert (p.jobs[JobState.SUCCEEDED], p.jobs[JobState.FAILED], p.jobs_total) == (8, 1, 9)
    assert p.attempts_retried == 5  # three once, index 1 twice
    [group] = detail.failures
    assert (group.total, group.recovered, group.gave_up) == (6, 3, 1)
    # The attempts of the job that gave up are not recovered: they count in the trend.
    assert group.last_day == 3 and group.trend == "up"
    assert group.examples[0]["index"] == 1 and not group.examples[0]["recovered"]
    client.force_login(operator)
    page = client.get(reverse("monitoring:campaign", args=[campaign.pk])).content.decode()
    assert "8 succeeded" in page and "1 failed" in page
    assert "1 job gave up" in page

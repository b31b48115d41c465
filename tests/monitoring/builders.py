"""Builders of the monitoring tests: planned campaigns, counters as the poller keeps
them, and constructed snapshot histories.

Counters and snapshots are written directly (what execution and the snapshot task
would have written): the read side is tested on the data it reads.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import F
from django.utils import timezone

from campaigns.choices import FailureClass, JobState
from campaigns.models import Campaign, Job, Stage
from campaigns.services import campaign_action, schedule_requests
from monitoring.choices import SnapshotLevel
from monitoring.models import ProgressSnapshot
from tests.campaigns.factories import CampaignFactory, approved_request, workflow


def planned_campaign(
    experiment,
    operator,
    *,
    requests: int = 1,
    samples: int = 1,
    events: int = 1000,
    per_job: int = 100,
    days: int = 20,
    name: str | None = None,
    template=None,
) -> Campaign:
    """A campaign with ``requests`` approved requests scheduled into it (planned jobs)."""
    campaign = CampaignFactory(
        experiment=experiment,
        created_by=operator,
        deadline=timezone.localdate() + dt.timedelta(days=days),
        **({"name": name} if name else {}),
    )
    template = template or workflow(experiment)
    reqs = [
        approved_request(
            experiment,
            template=template,
            events=events,
            per_job=per_job,
            samples=samples,
            days=days + 5,
        )
        for _ in range(requests)
    ]
    schedule_requests(campaign, [r.pk for r in reqs], operator)
    campaign.refresh_from_db()
    return campaign


def launch(campaign: Campaign, operator, at: dt.datetime | None = None) -> Campaign:
    """Launch through the service; ``at`` backdates the launch (a history in the past)."""
    campaign_action(campaign, "launch", operator)
    if at is not None:
        Campaign.objects.filter(pk=campaign.pk).update(launched_at=at)
    campaign.refresh_from_db()
    return campaign


def set_progress(campaign: Campaign, fraction: float, running: int = 0) -> None:
    """Counters as the poller would keep them with ``fraction`` of every stage done.

    Jobs are moved as counters only (the read side never looks at job rows for
    progress); ``running`` jobs of the first stage are running.
    """
    for stage in Stage.objects.filter(campaign=campaign).select_related("sample"):
        done = round(stage.jobs_total * fraction)
        run = min(running, stage.jobs_total - done) if stage.position == 0 else 0
        last = not Stage.objects.filter(input_stage=stage).exists()
        Stage.objects.filter(pk=stage.pk).update(
            n_planned=stage.jobs_total - done - run,
            n_ready=0,
            n_running=run,
            n_succeeded=done,
            events_done=round(stage.sample.events * fraction) if last else 0,
        )


def fail_jobs(
    campaign: Campaign,
    n: int,
    failure_class: str = FailureClass.OUT_OF_MEMORY,
    finished: dt.datetime | None = None,
) -> list[int]:
    """Mark ``n`` planned jobs failed with ``failure_class`` (rows and counters)."""
    finished = finished or timezone.now()
    ids = list(
        Job.objects.filter(stage__campaign=campaign, state=JobState.PLANNED)
        .order_by("id")
        .values_list("id", flat=True)[:n]
    )
    Job.objects.filter(pk__in=ids).update(
        state=JobState.FAILED,
        failure_class=failure_class,
        exit_code=137,
        failure_reason="killed: out of memory",
        finished=finished,
    )
    for stage_id in set(Job.objects.filter(pk__in=ids).values_list("stage_id", flat=True)):
        k = Job.objects.filter(pk__in=ids, stage_id=stage_id).count()
        Stage.objects.filter(pk=stage_id).update(
            n_planned=F("n_planned") - k, n_failed=F("n_failed") + k
        )
    return ids


def history(
    campaign: Campaign,
    points: list[tuple[dt.datetime, int]],
    level: str = SnapshotLevel.CAMPAIGN,
    request=None,
    target: int | None = None,
    **fields,
) -> list[ProgressSnapshot]:
    """Snapshot rows of one series: ``(taken_at, events_done)`` points."""
    rows = [
        ProgressSnapshot(
            campaign=campaign,
            level=level,
            request=request,
            taken_at=at,
            events_done=events,
            events_target=target or 0,
            succeeded=events // 100,
            **fields,
        )
        for at, events in points
    ]
    return ProgressSnapshot.objects.bulk_create(rows)


def seed_shape(
    start: dt.datetime, target: int, hours: float, step_h: float = 1.0
) -> list[tuple[dt.datetime, int]]:
    """The seed's good round: the pace ramps up linearly to full speed by day two, then
    holds, so half of ``target`` is done after 2.5 days (and all of it after 4).

    Events at t days: R t^2 / 4 for t <= 2, R (t - 1) after, with R = target / 3 per day.
    """
    rate = target / 3.0  # events per day at full speed
    out = []
    t = 0.0
    while t <= hours + 1e-9:
        days = t / 24
        done = rate * days * days / 4 if days <= 2 else rate * (days - 1)
        out.append((start + dt.timedelta(hours=t), min(round(done), target)))
        t += step_h
    return out

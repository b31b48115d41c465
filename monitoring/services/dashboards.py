"""What each monitoring page and progress endpoint shows, assembled with bounded queries.

Counts come from the stage counters (``progress``), history from snapshots,
forecasts from ``tracking``; nothing here reads job rows except the failure
triage, which is one indexed aggregate plus a few examples.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from django.db.models import Prefetch
from django.utils import timezone

from campaigns.choices import CLOSED_CAMPAIGN_STATES, OPEN_CAMPAIGN_STATES, CampaignState
from campaigns.models import Campaign, CampaignRequest, Job, Stage, StuckFlag
from campaigns.services.partitions import PartitionUsage, partition_usage
from experiments.models import Experiment
from requests_app.choices import OPEN_STATES
from requests_app.models import Comment, ProductionRequest, Sample, Transition

from .. import charts, conf
from ..choices import MilestoneKind, SnapshotLevel
from ..models import Milestone
from . import commitments as promises
from . import milestones as ms
from . import operations, snapshots
from .forecast import Forecast, Point, measure, window_start
from .history import History, history
from .progress import Breakdown, Progress, StageProgress, load_breakdown, totals
from .tracking import (
    Estimates,
    Tracked,
    by_risk,
    campaign_forecast,
    hold_seconds,
    launch_point,
    paused_seconds,
    request_forecast,
    track_campaigns,
    track_requests,
)

log = logging.getLogger(__name__)
# ``charts.ACTIVE``, spelled out: charts imports this package (its forecast types), so a
# default read from charts at import time depends on which module Django loads first.
ACTIVE_SPAN = "active"

RECENT = dt.timedelta(days=30)  # closed campaigns stay on the overview this long
MAX_ROWS = 200


@dataclass
class Throughput:
    """Pace over one window: events and jobs per hour (None: too short to tell)."""

    window_s: int
    events_per_hour: float | None
    jobs_per_hour: float | None

    @property
    def label(self) -> str:
        return (
            f"last {self.window_s // 3600} h"
            if self.window_s >= 3600
            else f"last {self.window_s // 60} min"
        )


def throughput(
    points: list[Point], now: dt.datetime, done: int, succeeded: int
) -> list[Throughput]:
    """Events and jobs per hour over each forecast window."""
    events = measure(points, now, done)
    jobs = measure([Point(p.at, p.succeeded) for p in points], now, succeeded)
    return [Throughput(w, events[w], jobs[w]) for w in events]


@dataclass
class SampleRow:
    sample_id: int
    name: str
    progress: Progress
    stages: list[StageProgress]


@dataclass
class RequestRow:
    request: ProductionRequest
    progress: Progress
    forecast: Forecast
    hold_s: int
    samples: list[SampleRow] = field(default_factory=list)


def _sample_rows(data: Breakdown, request_id: int) -> list[SampleRow]:
    return [
        SampleRow(sid, data.sample_names[sid], data.samples[sid], data.stages_of(sid))
        for sid in sorted(data.samples_of(request_id))
    ]


@dataclass
class Detail:
    """A campaign dashboard or a request page: progress, forecast, history, milestones."""

    campaign: Campaign | None
    progress: Progress
    forecast: Forecast
    history: list[Point]
    milestones: list[ms.MilestoneView]
    chart: charts.BurnUp | None  # None: not asked for (the progress API draws nothing)
    throughput: list[Throughput]
    now: dt.datetime
    snapshots: History | None = None  # the cached series behind ``history``
    requests: list[RequestRow] = field(default_factory=list)
    samples: list[SampleRow] = field(default_factory=list)
    hold_s: int = 0
    paused_s: int = 0
    failures: list[operations.FailureGroup] = field(default_factory=list)
    stuck: list[StuckFlag] = field(default_factory=list)
    stuck_count: int = 0
    timeline: list[dict[str, Any]] = field(default_factory=list)
    commitments: list[promises.CommitmentRow] = field(default_factory=list)
    # Requests completed with part of their work abandoned (force-complete): what is missing.
    partial: list[dict[str, Any]] = field(default_factory=list)

    @property
    def has_full_speed(self) -> bool:
        return any(m.kind == MilestoneKind.FULL_SPEED for m in self.milestones)

    @property
    def milestone_times(self) -> dict[str, dt.datetime | None]:
        return {m.kind: m.at for m in self.milestones}


def _chart(
    history: list[Point],
    p: Progress,
    f: Forecast,
    now: dt.datetime,
    start: dt.datetime | None,
    reached: dict[str, dt.datetime],
    span: str = ACTIVE_SPAN,
) -> charts.BurnUp:
    try:
        return charts.burn_up(
            history,
            target=p.events_target,
            deadline=f.deadline,
            now=now,
            done=p.events_done,
            forecast=f,
            start=start,
            milestones=reached,
            milestone_labels={k: MilestoneKind(k).label for k in reached},
            span=span,
        )
    except (ArithmeticError, ValueError):
        # Values no chart can scale (a deadline in the year 9999): the page goes on, with
        # the chart marked as unavailable rather than a 500 for everyone.
        log.exception("burn-up chart failed")
        return charts.BurnUp(description="The chart cannot be drawn for these dates.")


def campaign_detail(
    campaign: Campaign,
    now: dt.datetime | None = None,
    triage: bool = True,
    full: bool = True,
    chart_span: str = ACTIVE_SPAN,
) -> Detail:
    """The campaign dashboard (``triage``: with failures and stuck work): a fixed number
    of queries whatever the number of jobs. Without ``full`` (the progress API), no
    burn-up chart and no forecast or samples per request: what the API does not show.
    ``chart_span``: the burn-up's (``charts.ACTIVE`` or ``charts.WHOLE``)."""
    now = now or timezone.now()
    estimates = Estimates()
    data = load_breakdown(Stage.objects.filter(campaign=campaign))
    progress = data.campaigns.get(campaign.pk, Progress())
    requests = [
        link.request
        for link in CampaignRequest.objects.filter(campaign=campaign)
        .select_related("request__physics_group", "request__experiment")
        .order_by("request__deadline", "request_id")
    ]
    series = history(SnapshotLevel.CAMPAIGN, campaign.pk)
    f = campaign_forecast(campaign, progress, _window(series.points, now), now, estimates)
    reached: dict[str, dt.datetime] = {}
    per_request: dict[int, dict[str, dt.datetime]] = {}
    for rid, kind, at in Milestone.objects.filter(campaign=campaign).values_list(
        "request_id", "kind", "reached_at"
    ):
        (reached if rid is None else per_request.setdefault(rid, {}))[kind] = at
    # Those due and not stored yet, from the jobs' times (no query when none is due).
    last = series.points[-1].at if series.points else None
    reached = ms.complete(campaign, None, reached, progress, now, last)
    request_rows = []
    if full:
        points = snapshots.window_points(SnapshotLevel.REQUEST, [r.pk for r in requests], now)
        for r in requests:
            rp = data.requests.get(r.pk, Progress())
            rf = request_forecast(r, rp, points.get(r.pk, []), campaign, now, estimates)
            request_rows.append(
                RequestRow(r, rp, rf, hold_seconds(r, now), _sample_rows(data, r.pk))
            )
    detail = Detail(
        campaign=campaign,
        progress=progress,
        forecast=f,
        history=series.points,
        milestones=ms.views(reached, campaign.launched_at, campaign_level=True),
        chart=(
            _chart(series.points, progress, f, now, campaign.launched_at, reached, chart_span)
            if full
            else None
        ),
        throughput=throughput(
            series.points + launch_point(campaign), now, progress.events_done, progress.succeeded
        ),
        now=now,
        requests=request_rows,
        hold_s=sum(hold_seconds(r, now) for r in requests),
        paused_s=paused_seconds(campaign, now),
        snapshots=series,
        commitments=promises.rows(promises.of_campaign(campaign.pk), f, progress, reached, now),
    )
    detail.partial = abandoned_parts([r.pk for r in requests])
    if triage:
        jobs = Job.objects.filter(stage__campaign=campaign)
        detail.failures = operations.failures_by_class(jobs, now)
        detail.stuck, detail.stuck_count = operations.stuck_flags([campaign.pk], limit=20)
    return detail


def _window(history: list[Point], now: dt.datetime) -> list[Point]:
    """The few points of a full history that start the forecast windows."""
    starts = {window_start(history, now, w) for w in conf.forecast_windows_s()}
    return sorted((p for p in starts if p is not None), key=lambda p: p.at)


def request_detail(
    request: ProductionRequest,
    now: dt.datetime | None = None,
    timeline: bool = True,
    full: bool = True,
    chart_span: str = ACTIVE_SPAN,
) -> Detail:
    """A request's progress page: the campaign dashboard narrowed to one request, plus its
    timeline of transitions and comments (``timeline``). Without ``full`` (the progress
    API), no burn-up chart and no samples."""
    now = now or timezone.now()
    estimates = Estimates()
    link = CampaignRequest.objects.filter(request=request).select_related("campaign").first()
    campaign = link.campaign if link else None
    data = load_breakdown(Stage.objects.filter(request=request))
    progress = data.requests.get(request.pk, Progress())
    if not data.stages:  # not planned yet: the target is what the samples ask for
        progress.events_target = sum(
            Sample.objects.filter(request=request).values_list("events", flat=True)
        )
    series = History([], [])
    reached: dict[str, dt.datetime] = {}
    if campaign is not None:
        series = history(SnapshotLevel.REQUEST, request.pk)
        reached = ms.complete(campaign, request.pk, ms.load(campaign, request.pk), progress, now)
    unscheduled = (
        estimates.unscheduled([request])
        if campaign is None and request.state in OPEN_STATES
        else None
    )
    points = series.points
    f = request_forecast(
        request, progress, _window(points, now), campaign, now, estimates, unscheduled
    )
    launched = campaign.launched_at if campaign else None
    detail = Detail(
        campaign=campaign,
        progress=progress,
        forecast=f,
        history=points,
        milestones=ms.views(reached, launched, campaign_level=False),
        chart=_chart(points, progress, f, now, launched, reached, chart_span) if full else None,
        throughput=throughput(
            points + launch_point(campaign), now, progress.events_done, progress.succeeded
        ),
        now=now,
        samples=_sample_rows(data, request.pk) if full else [],
        hold_s=hold_seconds(request, now),
        snapshots=series,
        commitments=promises.rows(promises.of_request(request.pk), f, progress, reached, now),
    )
    if campaign is not None:
        jobs = Job.objects.filter(stage__request=request, stage__campaign=campaign)
        detail.failures = operations.failures_by_class(jobs, now)
    if link is not None and link.abandoned_at is not None:
        detail.partial = [
            {
                "request__number": request.number,
                "abandoned_at": link.abandoned_at,
                "abandon_reason": link.abandon_reason,
                "abandoned_jobs": link.abandoned_jobs,
                "done_pct": link.done_pct,
            }
        ]
    if timeline:
        detail.timeline = request_timeline(request)
    return detail


def _partial_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: row[key]
        for key in (
            "request__number",
            "abandoned_at",
            "abandon_reason",
            "abandoned_jobs",
            "done_pct",
        )
    }


def abandoned_parts(request_ids: list[int]) -> list[dict[str, Any]]:
    """What was abandoned of each force-completed request among ``request_ids`` (one query;
    none without requests)."""
    if not request_ids:
        return []
    return [
        _partial_row(row)
        for row in CampaignRequest.objects.filter(
            request_id__in=request_ids, abandoned_at__isnull=False
        )
        .order_by("request__number")
        .values("request__number", "abandoned_at", "abandon_reason", "abandoned_jobs", "done_pct")
    ]


def request_timeline(request: ProductionRequest) -> list[dict[str, Any]]:
    """Transitions and comments in time order: two queries."""
    transitions = Transition.objects.filter(request=request).select_related("actor")
    comments = Comment.objects.filter(request=request).select_related("author")
    events = chain(
        ({"kind": "transition", "at": t.created, "who": t.actor, "obj": t} for t in transitions),
        ({"kind": "comment", "at": c.created, "who": c.author, "obj": c} for c in comments),
    )
    return sorted(events, key=lambda e: (e["at"], e["kind"]))


@dataclass
class ExperimentOverview:
    experiment: Experiment
    campaigns: list[Tracked]
    requests: list[Tracked]
    now: dt.datetime


def _campaign_of(request_ids: list[int]) -> dict[int, Campaign]:
    return {
        link.request_id: link.campaign
        for link in CampaignRequest.objects.filter(request_id__in=request_ids).select_related(
            "campaign"
        )
    }


def experiment_overview(
    experiment: Experiment, now: dt.datetime | None = None
) -> ExperimentOverview:
    """Every open (or recently closed) campaign and open request of an experiment."""
    now = now or timezone.now()
    estimates = Estimates()
    campaigns = list(
        Campaign.objects.filter(experiment=experiment)
        .exclude(state__in=CLOSED_CAMPAIGN_STATES, updated__lt=now - RECENT)
        .select_related("experiment")
        .order_by("deadline", "id")[:MAX_ROWS]
    )
    c_progress = totals(Stage.objects.filter(campaign__in=[c.pk for c in campaigns]), "campaign_id")
    requests = list(
        ProductionRequest.objects.filter(experiment=experiment, state__in=OPEN_STATES)
        .select_related("physics_group", "experiment")
        .prefetch_related(
            Prefetch("samples", queryset=Sample.objects.only("id", "request_id", "events"))
        )
        .order_by("deadline", "id")[:MAX_ROWS]
    )
    ids = [r.pk for r in requests]
    r_progress = totals(Stage.objects.filter(request_id__in=ids), "request_id")
    for r in requests:
        if r.pk not in r_progress:
            r_progress[r.pk] = Progress(events_target=r.events_total)
    overview = ExperimentOverview(
        experiment=experiment,
        campaigns=track_campaigns(campaigns, c_progress, now, estimates),
        requests=track_requests(requests, r_progress, _campaign_of(ids), now, estimates),
        now=now,
    )
    promises.attach(overview.campaigns + overview.requests, now)
    return overview


@dataclass
class OperatorOverview:
    campaigns: list[Tracked]
    failures: list[operations.FailureGroup]
    stuck: list[StuckFlag]
    stuck_count: int
    backends: list[operations.BackendLoad]
    now: dt.datetime
    storage: operations.StorageStatus | None = None
    partitions: list[PartitionUsage] = field(default_factory=list)


def operator_overview(now: dt.datetime | None = None) -> OperatorOverview:
    """Every open campaign by risk, failures by class, stuck work, backend load."""
    now = now or timezone.now()
    estimates = Estimates()
    campaigns = list(
        Campaign.objects.filter(state__in=sorted(OPEN_CAMPAIGN_STATES))
        .select_related("experiment")
        .order_by("deadline", "id")
    )
    ids = [c.pk for c in campaigns]
    progress = totals(Stage.objects.filter(campaign_id__in=ids), "campaign_id")
    rows = track_campaigns(campaigns, progress, now, estimates)
    promises.attach(rows, now)
    loads = operations.backend_loads()
    # Throughput per backend over the shortest window, from each campaign's snapshots.
    window = conf.forecast_windows_s()[0]
    points = snapshots.window_points(SnapshotLevel.CAMPAIGN, ids, now, [window])
    for c in campaigns:
        if c.state == CampaignState.PLANNED:
            continue
        p = progress.get(c.pk, Progress())
        start = window_start(points.get(c.pk, []) + launch_point(c), now, window)
        if start is None or start.at >= now:
            continue
        hours = (now - start.at).total_seconds() / 3600
        load = loads.get(c.backend)
        if load is None:
            continue
        load.jobs_per_hour = (load.jobs_per_hour or 0.0) + max(
            p.succeeded - start.succeeded, 0
        ) / hours
        load.events_per_hour = (load.events_per_hour or 0.0) + max(
            p.events_done - start.events, 0
        ) / hours
    stuck, stuck_count = operations.stuck_flags()
    return OperatorOverview(
        campaigns=by_risk(rows),
        failures=operations.failures_by_class(
            Job.objects.filter(stage__campaign__state__in=sorted(OPEN_CAMPAIGN_STATES)), now
        ),
        stuck=stuck,
        stuck_count=stuck_count,
        backends=sorted(loads.values(), key=lambda b: b.name),
        now=now,
        storage=operations.storage_status(),
        partitions=partition_usage(),
    )

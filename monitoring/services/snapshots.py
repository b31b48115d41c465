"""Progress snapshots: recorded from the stage counters, thinned, read back as series
(whole series: ``history``; the starts of the forecast windows: ``window_points``).

``record_snapshots`` (beat, every ``OPOS_SNAPSHOT_INTERVAL_S``) writes one row per
running campaign, per request and per sample in it, plus one final row for a
campaign that closed since its last snapshot; it also stores the milestones
reached since, at the time the jobs say (``milestones``). A fixed number of
queries per cycle (a few, plus the bulk inserts), whatever the number of jobs,
plus a few per campaign or request with a milestone due: full speed is looked
for in a campaign's jobs until it is reached, in the cycles after a job of it
finished (a sweep of 100,000 jobs took 0.2 s on PostgreSQL, 0.7 s on SQLite).

``thin_snapshots`` (beat, hourly) keeps every row of the last 48 h, then the last
row of each hour up to 30 days, then the last of each day. Only whole buckets
are thinned, so a bucket is decided once, and only rows due for their next tier
are read.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from campaigns import conf as campaigns_conf
from campaigns.choices import CampaignState
from campaigns.models import Campaign, Stage
from campaigns.scheduler import CampaignLoad, campaign_share
from experiments.models import Experiment
from requests_app.models import ProductionRequest

from .. import conf
from ..choices import MilestoneKind, SnapshotLevel, SnapshotTier
from ..models import Milestone, ProgressSnapshot
from . import milestones
from .forecast import Point
from .progress import Progress, load_breakdown

log = logging.getLogger(__name__)

RUNNING_STATES = (CampaignState.ACTIVE, CampaignState.PAUSED)
# A campaign closed longer ago than this gets no final snapshot (the recorder was down).
FINAL_SNAPSHOT_WITHIN = dt.timedelta(days=7)
CHUNK = 500


@dataclass
class SnapshotReport:
    campaigns: int = 0
    rows: int = 0
    milestones: int = 0


@dataclass
class ThinReport:
    hourly: int = 0
    daily: int = 0
    deleted: int = 0


def _row(campaign_id: int, level: str, p: Progress, now: dt.datetime, **extra) -> ProgressSnapshot:
    return ProgressSnapshot(
        campaign_id=campaign_id,
        level=level,
        taken_at=now,
        events_done=p.events_done,
        events_target=p.events_target,
        jobs_total=p.jobs_total,
        jobs={s: n for s, n in p.jobs.items() if n},
        succeeded=p.succeeded,
        running=p.running,
        in_flight=p.in_flight,
        **extra,
    )


def campaigns_due(now: dt.datetime, campaigns: QuerySet[Campaign] | None = None) -> list[dict]:
    """Campaigns to snapshot: those running or paused, and those closed (in the last
    week) since their last snapshot, for their final point. Two queries.

    The last snapshot is a correlated subquery on the campaign series index, not a
    join over every snapshot.
    """
    campaigns = campaigns if campaigns is not None else Campaign.objects.all()
    fields = ("id", "experiment_id", "backend", "state", "throttle")
    running = list(campaigns.filter(state__in=RUNNING_STATES).values(*fields))
    last = Subquery(
        ProgressSnapshot.objects.filter(campaign=OuterRef("pk"), level=SnapshotLevel.CAMPAIGN)
        .order_by("-taken_at")
        .values("taken_at")[:1]
    )
    closed = list(
        campaigns.filter(
            state__in=[CampaignState.COMPLETED, CampaignState.CANCELLED],
            launched_at__isnull=False,
            updated__gte=now - FINAL_SNAPSHOT_WITHIN,
        )
        .annotate(last=last, closed_at=Coalesce("completed_at", "cancelled_at"))
        .filter(Q(last__isnull=True) | Q(last__lt=F("closed_at")))
        .values(*fields)
    )
    return running + closed


def allotted_slots(campaign: dict, quotas: dict[int, int], jobs_total: int) -> int:
    """Jobs in flight the campaign may hold (the scheduler's share), at most its jobs."""
    load = CampaignLoad(
        campaign_id=campaign["id"],
        experiment_id=campaign["experiment_id"],
        backend=campaign["backend"],
        state=campaign["state"],
        priority=0,
        deadline=0.0,
        stages=(),
        throttle=campaign["throttle"],
    )
    share = campaign_share(load, campaigns_conf.backend_capacity(), quotas)
    return min(share, jobs_total)


def record_snapshots(
    now: dt.datetime | None = None, campaigns: QuerySet[Campaign] | None = None
) -> SnapshotReport:
    """Record one snapshot per due campaign (of ``campaigns``, default all), request and
    sample, and the milestones reached for the first time."""
    now = now or timezone.now()
    report = SnapshotReport()
    due = campaigns_due(now, campaigns)
    if not due:
        return report
    ids = [c["id"] for c in due]
    quotas = dict(Experiment.objects.values_list("id", "job_quota"))
    rows: list[ProgressSnapshot] = []
    states: dict[tuple[int, int | None], milestones.State] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        data = load_breakdown(Stage.objects.filter(campaign_id__in=chunk))
        for campaign in due[start : start + CHUNK]:
            cid = campaign["id"]
            p = data.campaigns.get(cid, Progress())
            slots = allotted_slots(campaign, quotas, p.jobs_total)
            rows.append(_row(cid, SnapshotLevel.CAMPAIGN, p, now, slots=slots))
            states[(cid, None)] = milestones.State(
                now, p.started, p.running, p.events_done, p.events_target, slots
            )
        request_campaign: dict[int, int] = {}
        for sid, p in data.samples.items():
            rid = data.sample_request[sid]
            cid = data.sample_campaign[sid]
            request_campaign[rid] = cid
            rows.append(_row(cid, SnapshotLevel.SAMPLE, p, now, request_id=rid, sample_id=sid))
        for rid, p in data.requests.items():
            cid = request_campaign[rid]
            rows.append(_row(cid, SnapshotLevel.REQUEST, p, now, request_id=rid))
            states[(cid, rid)] = milestones.State(
                now, p.started, p.running, p.events_done, p.events_target
            )
    existing: dict[tuple[int, int | None], dict[str, dt.datetime]] = {}
    for cid, rid, kind, at in Milestone.objects.filter(campaign_id__in=ids).values_list(
        "campaign_id", "request_id", "kind", "reached_at"
    ):
        existing.setdefault((cid, rid), {})[kind] = at
    moved = _moved(ids, {c["id"] for c in due if c["state"] not in RUNNING_STATES})
    new = [
        Milestone(campaign_id=cid, request_id=rid, kind=kind, reached_at=at)
        for (cid, rid), state in states.items()
        for kind, at in _milestones(
            cid, rid, state, existing.get((cid, rid), {}), cid in moved
        ).items()
    ]
    with transaction.atomic():
        ProgressSnapshot.objects.bulk_create(rows, batch_size=CHUNK)
        # Two recorders at once (a late beat run) must not fail on the unique milestone.
        Milestone.objects.bulk_create(new, batch_size=CHUNK, ignore_conflicts=True)
    report.campaigns, report.rows, report.milestones = len(due), len(rows), len(new)
    return report


def _moved(ids: list[int], closed: set[int]) -> set[int]:
    """Campaigns whose jobs may have run at full speed since their last snapshot: a job of
    theirs finished since (``Stage.progress_at``, set by finalize, which also writes the
    jobs' exact start and end times), no snapshot yet, or closed (their final look). Two
    queries: the sweep over a campaign's jobs is not repeated every cycle for nothing."""
    last = dict(
        Campaign.objects.filter(pk__in=ids)
        .annotate(
            last=Subquery(
                ProgressSnapshot.objects.filter(
                    campaign=OuterRef("pk"), level=SnapshotLevel.CAMPAIGN
                )
                .order_by("-taken_at")
                .values("taken_at")[:1]
            )
        )
        .values_list("pk", "last")
    )
    finished = dict(
        Stage.objects.filter(campaign_id__in=ids)
        .order_by()
        .values("campaign_id")
        .annotate(at=Max("progress_at"))
        .values_list("campaign_id", "at")
    )
    return {
        cid
        for cid in ids
        if cid in closed
        or last.get(cid) is None
        or (finished.get(cid) is not None and finished[cid] >= last[cid])
    }


def _milestones(
    campaign_id: int,
    request_id: int | None,
    state: milestones.State,
    stored: dict[str, dt.datetime],
    moved: bool,
) -> dict[str, dt.datetime]:
    """Milestones newly reached, at the time the jobs say (a few queries, only for what is
    due and not stored: see ``milestones``); the snapshot's time when the jobs carry none.
    Full speed is looked for in the jobs while the campaign has not reached it, when its
    jobs ``moved`` since the last snapshot or the running count shows it now."""
    by_counters = milestones.reached(state)
    kinds = milestones.due(
        stored,
        state.started,
        state.events_done,
        state.events_target,
        full_speed=state.slots > 0
        and state.started
        and (moved or MilestoneKind.FULL_SPEED in by_counters),
    )
    if not kinds:
        return {}
    found = milestones.from_jobs(campaign_id, request_id, kinds, state.events_target, state.slots)
    return {
        kind: min(found.get(kind, state.at), state.at)
        for kind in kinds
        if kind in found or kind in by_counters
    }


# --- thinning ----------------------------------------------------------------------------------


def _floor(moment: dt.datetime, seconds: int) -> dt.datetime:
    ts = int(moment.timestamp())
    return dt.datetime.fromtimestamp(ts - ts % seconds, tz=dt.UTC)


def _thin_tier(tier: int, before: dt.datetime, bucket_s: int, to_tier: int) -> tuple[int, int]:
    """Keep the last row of each series in each bucket; promote it to ``to_tier``."""
    keep: dict[tuple, tuple[dt.datetime, int]] = {}
    drop: list[int] = []
    rows = (
        ProgressSnapshot.objects.filter(tier=tier, taken_at__lt=before)
        .order_by()
        .values_list("id", "level", "campaign_id", "request_id", "sample_id", "taken_at")
    )
    for pk, level, cid, rid, sid, at in rows.iterator(chunk_size=2000):
        key = (level, cid, rid, sid, int(at.timestamp()) // bucket_s)
        kept = keep.get(key)
        if kept is None or (at, pk) > kept:
            if kept is not None:
                drop.append(kept[1])
            keep[key] = (at, pk)
        else:
            drop.append(pk)
    kept_ids = [pk for _at, pk in keep.values()]
    with transaction.atomic():
        for start in range(0, len(drop), CHUNK):
            ProgressSnapshot.objects.filter(pk__in=drop[start : start + CHUNK]).delete()
        for start in range(0, len(kept_ids), CHUNK):
            ProgressSnapshot.objects.filter(pk__in=kept_ids[start : start + CHUNK]).update(
                tier=to_tier
            )
    return len(kept_ids), len(drop)


def thin_snapshots(now: dt.datetime | None = None) -> ThinReport:
    """Apply the thinning policy. Harmless when repeated."""
    now = now or timezone.now()
    report = ThinReport()
    hourly_before = _floor(now - dt.timedelta(seconds=conf.KEEP_RAW_S), 3600)
    report.hourly, dropped = _thin_tier(SnapshotTier.RAW, hourly_before, 3600, SnapshotTier.HOURLY)
    report.deleted += dropped
    daily_before = _floor(now - dt.timedelta(seconds=conf.KEEP_HOURLY_S), 86400)
    report.daily, dropped = _thin_tier(SnapshotTier.HOURLY, daily_before, 86400, SnapshotTier.DAILY)
    report.deleted += dropped
    return report


# --- reading -------------------------------------------------------------------------------------


def window_points(
    level: str, ids: Iterable[int], now: dt.datetime, windows_s: Iterable[float] | None = None
) -> dict[int, list[Point]]:
    """For each campaign or request: the points that start each forecast window.

    The latest snapshot at or before ``now - window`` for every window, and the
    earliest snapshot: all ``forecast.window_start`` needs, in one query (correlated
    subqueries on the series index) instead of reading whole series.
    """
    ids = list(ids)
    if not ids:
        return {}
    model, column = (
        (Campaign, "campaign")
        if level == SnapshotLevel.CAMPAIGN
        else (ProductionRequest, "request")
    )
    base = ProgressSnapshot.objects.filter(level=level, **{column: OuterRef("pk")})
    annotations = {}
    cutoffs = {"first": None}
    for n, window in enumerate(windows_s or conf.forecast_windows_s()):
        cutoffs[f"w{n}"] = now - dt.timedelta(seconds=window)
    for name, cutoff in cutoffs.items():
        qs = base.filter(taken_at__lte=cutoff) if cutoff else base.filter(taken_at__lte=now)
        qs = qs.order_by("-taken_at", "-id") if cutoff else qs.order_by("taken_at", "id")
        annotations[f"{name}_at"] = Subquery(qs.values("taken_at")[:1])
        annotations[f"{name}_ev"] = Subquery(qs.values("events_done")[:1])
        annotations[f"{name}_ok"] = Subquery(qs.values("succeeded")[:1])
    result: dict[int, list[Point]] = {}
    for row in model.objects.filter(pk__in=ids).annotate(**annotations).values("pk", *annotations):
        points = {
            (row[f"{name}_at"], int(row[f"{name}_ev"]), int(row[f"{name}_ok"]))
            for name in cutoffs
            if row[f"{name}_at"] is not None
        }
        result[row["pk"]] = sorted((Point(*p) for p in points), key=lambda p: p.at)
    return result


def last_snapshot_at() -> dt.datetime | None:
    """When the last snapshot was taken (for /metrics: is the recorder alive?)."""
    return ProgressSnapshot.objects.aggregate(last=Max("taken_at"))["last"]

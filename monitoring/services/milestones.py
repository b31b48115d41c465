"""Milestones of a production round, from its jobs' start and end times.

* first job running: the earliest start of any of its jobs;
* full speed: the first moment its running jobs reached ``OPOS_FULL_SPEED_FRACTION``
  (80%) of the campaign's allotted slots (its share of capacity, quota and throttle, at
  most its number of jobs): a sweep over the start and end times of its jobs in SQL
  (+1 at each start, -1 at each end, a running sum); campaign level only;
* 50% and 100% of the events through the last stage: the end of the succeeded job that
  brought the running sum of their events (by end time) to the threshold.

Job times are exact (the wrapper's, from the manifest), so a campaign of jobs shorter
than the snapshot interval gets them right; snapshots only see what runs at the moment
they are taken. Each milestone is computed once, when the stage counters say it was
reached (full speed: while the campaign runs, and once more when it closed), and
stored (``Milestone``): pages read the stored rows and compute only what is due and
missing. Work whose jobs carry no times (rows written by hand, or by versions that did
not keep them) falls back to the snapshot's time, as before: ``reached`` decides from
one snapshot, ``derive`` over a history. Elapsed times count from the campaign's launch.

The queries, each bounded to one campaign's (or request's) jobs through the stage
index: the earliest start is one aggregate, each events threshold one windowed query,
full speed one sweep.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection
from django.db.models import F, Min, QuerySet, Sum, Window
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from campaigns import conf as campaigns_conf
from campaigns.choices import CLOSED_CAMPAIGN_STATES, JobState
from campaigns.models import Campaign, Job, Stage

from .. import conf
from ..choices import MilestoneKind
from ..models import Milestone


@dataclass(frozen=True, slots=True)
class State:
    """What a snapshot says, as far as milestones care."""

    at: dt.datetime
    started: bool
    running: int
    events_done: int
    events_target: int
    slots: int = 0  # 0: no full-speed milestone (request level)


def reached(state: State, fraction: float | None = None) -> set[str]:
    """The milestones this state has reached."""
    fraction = conf.full_speed_fraction() if fraction is None else fraction
    kinds: set[str] = set()
    if state.started or state.events_done > 0:
        kinds.add(MilestoneKind.FIRST_RUNNING)
    if state.slots > 0 and state.running >= max(math.ceil(fraction * state.slots), 1):
        kinds.add(MilestoneKind.FULL_SPEED)
    if state.events_target > 0:
        if 2 * state.events_done >= state.events_target:
            kinds.add(MilestoneKind.HALF_EVENTS)
        if state.events_done >= state.events_target:
            kinds.add(MilestoneKind.ALL_EVENTS)
    return kinds


def derive(history: Iterable[State], fraction: float | None = None) -> dict[str, dt.datetime]:
    """When each milestone was first reached in a history of states."""
    first: dict[str, dt.datetime] = {}
    for state in sorted(history, key=lambda s: s.at):
        for kind in reached(state, fraction):
            first.setdefault(kind, state.at)
    return first


@dataclass
class MilestoneView:
    """A milestone for display: when, and how long after the launch."""

    kind: str
    at: dt.datetime | None
    since_launch: dt.timedelta | None

    @property
    def label(self) -> str:
        return MilestoneKind(self.kind).label

    @property
    def elapsed_s(self) -> int | None:
        return int(self.since_launch.total_seconds()) if self.since_launch is not None else None


def views(
    reached_at: dict[str, dt.datetime], launched_at: dt.datetime | None, campaign_level: bool
) -> list[MilestoneView]:
    """Every milestone in order, reached or not (``at`` None), with the time since launch."""
    out = []
    for kind in MilestoneKind.values:
        if kind == MilestoneKind.FULL_SPEED and not campaign_level:
            continue
        at = reached_at.get(kind)
        since = at - launched_at if at and launched_at and at >= launched_at else None
        out.append(MilestoneView(kind, at, since))
    return out


def load(campaign: Campaign, request_id: int | None = None) -> dict[str, dt.datetime]:
    """The recorded milestones of a campaign (or of one of its requests): one query."""
    rows = Milestone.objects.filter(campaign=campaign, request_id=request_id)
    return {kind: at for kind, at in rows.values_list("kind", "reached_at")}


# --- from the jobs ------------------------------------------------------------------------------


def full_speed_threshold(slots: int, fraction: float | None = None) -> int:
    """Running jobs that make full speed for a campaign allotted ``slots``."""
    fraction = conf.full_speed_fraction() if fraction is None else fraction
    return max(math.ceil(fraction * slots), 1)


def campaign_slots(campaign: Campaign, jobs_total: int) -> int:
    """Jobs in flight the campaign may hold: its backend's capacity, its experiment's
    quota and its throttle, at most its number of jobs (``experiment`` loaded)."""
    share = campaigns_conf.backend_capacity().get(campaign.backend, 0)
    quota = campaign.experiment.job_quota
    if quota is not None:
        share = min(share, quota)
    if campaign.throttle is not None:
        share = min(share, campaign.throttle)
    return max(min(share, jobs_total), 0)


def _jobs(campaign_id: int, request_id: int | None) -> QuerySet[Job]:
    stages = Stage.objects.filter(campaign_id=campaign_id)
    if request_id is not None:
        stages = stages.filter(request_id=request_id)
    return Job.objects.filter(stage__in=stages.values("id"))


def _aware(value: dt.datetime | str | None) -> dt.datetime | None:
    """A moment from raw SQL: a datetime (PostgreSQL) or its text (SQLite, in UTC)."""
    if value is None:
        return None
    moment = parse_datetime(value) if isinstance(value, str) else value
    if moment is not None and timezone.is_naive(moment):
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


def first_start(campaign_id: int, request_id: int | None = None) -> dt.datetime | None:
    """When the first of the jobs started: one aggregate."""
    return _jobs(campaign_id, request_id).aggregate(at=Min("started"))["at"]


def events_reached(campaign_id: int, request_id: int | None, threshold: int) -> dt.datetime | None:
    """When the succeeded jobs of the last stages had done ``threshold`` events (by end
    time): one query, a running sum in a window."""
    last = Stage.objects.filter(campaign_id=campaign_id, dependents__isnull=True)
    if request_id is not None:
        last = last.filter(request_id=request_id)
    running = Window(Sum("events"), order_by=[F("finished").asc(), F("id").asc()])
    return (
        Job.objects.filter(
            stage__in=last.values("id"), state=JobState.SUCCEEDED, finished__isnull=False
        )
        .annotate(done=running)
        .filter(done__gte=threshold)
        .order_by("finished", "id")
        .values_list("finished", flat=True)
        .first()
    )


def running_reached(campaign_id: int, threshold: int) -> dt.datetime | None:
    """The first moment ``threshold`` jobs of the campaign ran at once: one query.

    A sweep over the start (+1) and end (-1) of every job that started, in time order
    (an end before a start at the same moment: a slot handed on is not two jobs); the
    running sum is the number of jobs running after each event.
    """
    job, stage = Job._meta.db_table, Stage._meta.db_table
    sql = f"""
        WITH moves AS (
            SELECT j.started AS at, 1 AS step
              FROM {job} j JOIN {stage} s ON s.id = j.stage_id
             WHERE s.campaign_id = %s AND j.started IS NOT NULL
            UNION ALL
            SELECT j.finished AS at, -1 AS step
              FROM {job} j JOIN {stage} s ON s.id = j.stage_id
             WHERE s.campaign_id = %s AND j.started IS NOT NULL AND j.finished IS NOT NULL
        ), sweep AS (
            SELECT at, SUM(step) OVER (ORDER BY at, step ROWS UNBOUNDED PRECEDING) AS running
              FROM moves
        )
        SELECT MIN(at) FROM sweep WHERE running >= %s
    """  # noqa: S608 - table names from the models, values as parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign_id, campaign_id, threshold])
        row = cursor.fetchone()
    return _aware(row[0]) if row else None


def from_jobs(
    campaign_id: int,
    request_id: int | None,
    kinds: Iterable[str],
    events_target: int,
    slots: int = 0,
    fraction: float | None = None,
) -> dict[str, dt.datetime]:
    """When each of ``kinds`` was reached, from the jobs' times (kinds the jobs cannot
    tell, for want of times, are left out): at most one query per kind."""
    found: dict[str, dt.datetime | None] = {}
    for kind in kinds:
        if kind == MilestoneKind.FIRST_RUNNING:
            found[kind] = first_start(campaign_id, request_id)
        elif kind == MilestoneKind.HALF_EVENTS and events_target > 0:
            found[kind] = events_reached(campaign_id, request_id, math.ceil(events_target / 2))
        elif kind == MilestoneKind.ALL_EVENTS and events_target > 0:
            found[kind] = events_reached(campaign_id, request_id, events_target)
        elif kind == MilestoneKind.FULL_SPEED and request_id is None and slots > 0:
            found[kind] = running_reached(campaign_id, full_speed_threshold(slots, fraction))
    return {kind: at for kind, at in found.items() if at is not None}


def due(
    reached_at: dict[str, dt.datetime],
    started: bool,
    events_done: int,
    events_target: int,
    full_speed: bool,
) -> list[str]:
    """Milestones not stored yet that are worth computing: the counters say they were
    reached (full speed cannot be told from the counters: ``full_speed`` says whether to
    look)."""
    kinds = []
    if started or events_done > 0:
        kinds.append(MilestoneKind.FIRST_RUNNING)
    if full_speed:
        kinds.append(MilestoneKind.FULL_SPEED)
    if events_target > 0 and 2 * events_done >= events_target:
        kinds.append(MilestoneKind.HALF_EVENTS)
    if events_target > 0 and events_done >= events_target:
        kinds.append(MilestoneKind.ALL_EVENTS)
    return [k for k in kinds if k not in reached_at]


def complete(
    campaign: Campaign,
    request_id: int | None,
    reached_at: dict[str, dt.datetime],
    progress,
    now: dt.datetime,
    last_snapshot: dt.datetime | None = None,
) -> dict[str, dt.datetime]:
    """The stored milestones plus those due and missing, computed from the jobs and
    stored (for a page: nothing is computed when nothing is due). Full speed is looked
    for here only once the campaign closed, and only if the recorder has not taken its
    final look (``last_snapshot``, the campaign's last, is not after the close); while
    the campaign runs, the recorder looks."""
    closed_at = campaign.completed_at or campaign.cancelled_at
    closed = campaign.state in CLOSED_CAMPAIGN_STATES and campaign.launched_at is not None
    final_look = last_snapshot is not None and closed_at is not None and last_snapshot >= closed_at
    kinds = due(
        reached_at,
        progress.started,
        progress.events_done,
        progress.events_target,
        full_speed=request_id is None and closed and not final_look and progress.started,
    )
    if not kinds:
        return reached_at
    slots = campaign_slots(campaign, progress.jobs_total) if request_id is None else 0
    found = {
        kind: min(at, now)
        for kind, at in from_jobs(
            campaign.pk, request_id, kinds, progress.events_target, slots
        ).items()
    }
    store(campaign.pk, request_id, found)
    return {**reached_at, **found}


def store(campaign_id: int, request_id: int | None, found: dict[str, dt.datetime]) -> None:
    """Keep milestones once: a second writer (another page, the recorder) is ignored."""
    if found:
        Milestone.objects.bulk_create(
            [
                Milestone(campaign_id=campaign_id, request_id=request_id, kind=k, reached_at=at)
                for k, at in found.items()
            ],
            ignore_conflicts=True,
        )

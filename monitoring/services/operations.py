"""What operators triage: failures by class, stuck work, and each backend's load.

Each function runs a fixed number of queries: failures are one indexed aggregate
and one query for the latest examples of every class (attempts and jobs apart: a
failed attempt whose job succeeded since is *recovered*), stuck work reads the open
flags execution raised, backend load sums the stage counters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Sum, Window
from django.db.models.functions import RowNumber

from campaigns import conf as campaigns_conf
from campaigns.choices import FailureClass, JobState
from campaigns.execution import retention
from campaigns.execution.failures import describe_exit
from campaigns.models import Job, Stage, StuckFlag, Transfer

FAILED_STATES = (JobState.FAILED, JobState.LOST)
EXAMPLE_FIELDS = (
    "id",
    "index",
    "attempt",
    "exit_code",
    "failure_reason",
    "finished",
    "backend",
    "batch_id",
    "host",
    "stage_id",
    "stage__name",
    "stage__position",
    "stage__sample__name",
    "stage__campaign_id",
    "stage__campaign__name",
    "stage__request__number",
    "recovered",
    "retried",
)


@dataclass
class FailureGroup:
    """Failed attempts of one class: how many, how many jobs gave up, the trend of those
    not recovered since, and a few examples (request, sample, stage, job and attempt).

    An attempt is *retried* when another attempt of its job followed, and *recovered* when
    its job succeeded since; the jobs that *gave up* are failed attempts nobody retried.
    The trend counts the attempts not recovered, so a burst of failures that their retries
    made good does not read as rising.
    """

    failure_class: str
    total: int
    last_day: int
    day_before: int
    examples: list[dict[str, Any]] = field(default_factory=list)
    gave_up: int = 0
    recovered: int = 0

    @property
    def label(self) -> str:
        try:
            return FailureClass(self.failure_class).label
        except ValueError:
            return self.failure_class or "Unclassified"

    @property
    def trend(self) -> str:
        """``up``, ``down``, ``flat`` or ``none`` (nothing unrecovered in either day): the
        last 24 h against the 24 h before, counting attempts not recovered since."""
        if self.last_day > self.day_before:
            return "up"
        if self.last_day < self.day_before:
            return "down"
        return "flat" if self.last_day else "none"


def _recovered() -> Exists:
    """The attempt's job succeeded since (on the unique stage, index, attempt index)."""
    return Exists(
        Job.objects.filter(
            stage_id=OuterRef("stage_id"), index=OuterRef("index"), state=JobState.SUCCEEDED
        )
    )


def _retried() -> Exists:
    """Another attempt of the job followed this one (on the parent index)."""
    return Exists(Job.objects.filter(parent_id=OuterRef("pk")))


def failures_by_class(
    jobs: QuerySet[Job], now: dt.datetime, examples: int = 3
) -> list[FailureGroup]:
    """Failed and lost attempts among ``jobs`` by class, most frequent first, with the
    latest ``examples`` of each (those not recovered first): two queries.

    ``jobs`` is already narrowed to what the page covers (a campaign, open
    campaigns); the filter on state uses the (stage, state) index, the two
    per-attempt checks (recovered, retried) an index each.
    """
    day = now - dt.timedelta(days=1)
    two_days = now - dt.timedelta(days=2)
    failed = jobs.filter(state__in=FAILED_STATES).annotate(
        recovered=_recovered(), retried=_retried()
    )
    open_ = Q(recovered=False)
    groups = [
        FailureGroup(
            row["failure_class"],
            row["total"],
            row["last_day"],
            row["day_before"],
            gave_up=row["gave_up"],
            recovered=row["n_recovered"],
        )
        for row in failed.order_by()
        .values("failure_class")
        .annotate(
            total=Count("id"),
            last_day=Count("id", filter=open_ & Q(finished__gte=day)),
            day_before=Count("id", filter=open_ & Q(finished__gte=two_days, finished__lt=day)),
            gave_up=Count("id", filter=Q(retried=False)),
            n_recovered=Count("id", filter=Q(recovered=True)),
        )
    ]
    groups.sort(key=lambda g: (-g.total, g.failure_class))
    if groups and examples > 0:
        # The latest few of every class in one query: rank within each class, those whose
        # job has not succeeded since first (what an operator still has to look at).
        latest = Window(
            RowNumber(),
            partition_by=[F("failure_class")],
            order_by=[
                F("recovered").asc(),
                F("finished").desc(nulls_last=True),
                F("id").desc(),
            ],
        )
        by_class: dict[str, list[dict[str, Any]]] = {}
        for row in (
            failed.annotate(rank=latest)
            .filter(rank__lte=examples)
            .order_by("failure_class", "rank")
            .values(*EXAMPLE_FIELDS, "failure_class")
        ):
            row["exit_meaning"] = describe_exit(row["exit_code"])
            by_class.setdefault(row["failure_class"], []).append(row)
        for group in groups:
            group.examples = by_class.get(group.failure_class, [])
    return groups


def stuck_flags(campaign_ids: Iterable[int] | None = None, limit: int = 50) -> tuple[list, int]:
    """Open stuck flags (newest first, at most ``limit``) and how many are open: two queries."""
    flags = StuckFlag.objects.open()
    if campaign_ids is not None:
        flags = flags.filter(campaign_id__in=list(campaign_ids))
    rows = list(
        flags.select_related("campaign", "stage", "job").order_by("-created", "-id")[:limit]
    )
    return rows, flags.count()


@dataclass
class BackendLoad:
    """One batch backend: its capacity, what it holds now, and what it finished lately."""

    name: str
    capacity: int
    queued: int = 0
    running: int = 0
    held: int = 0
    jobs_per_hour: float | None = None
    events_per_hour: float | None = None

    @property
    def in_flight(self) -> int:
        return self.queued + self.running + self.held

    @property
    def used_percent(self) -> float:
        return round(100 * min(self.in_flight / self.capacity, 1.0), 1) if self.capacity else 0.0


def backend_loads() -> dict[str, BackendLoad]:
    """Capacity (settings) and jobs in flight (stage counters) per backend: one query."""
    loads = {
        name: BackendLoad(name, cap) for name, cap in campaigns_conf.backend_capacity().items()
    }
    busy = Stage.objects.filter(Q(n_queued__gt=0) | Q(n_running__gt=0) | Q(n_held__gt=0))
    for row in (
        busy.order_by()
        .values("campaign__backend")
        .annotate(q=Sum("n_queued"), r=Sum("n_running"), h=Sum("n_held"))
    ):
        load = loads.setdefault(row["campaign__backend"], BackendLoad(row["campaign__backend"], 0))
        load.queued, load.running, load.held = row["q"] or 0, row["r"] or 0, row["h"] or 0
    return loads


@dataclass
class StorageStatus:
    """The work area's disk use (last measured by retention, free space now) and the
    succeeded jobs whose outputs are still waiting for storage (a failed transfer)."""

    work_area: dict[str, Any]
    transfers: list[Transfer]
    transfers_count: int


def storage_status(limit: int = 20) -> StorageStatus:
    """Two queries: the waiting transfers (latest first, bounded) and their count."""
    waiting = Transfer.objects.select_related(
        "job__stage__campaign", "job__stage__request"
    ).order_by("-updated", "-id")
    return StorageStatus(
        work_area=retention.work_area_usage(),
        transfers=list(waiting[:limit]),
        transfers_count=Transfer.objects.count(),
    )

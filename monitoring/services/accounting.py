"""The accounting ledger: CPU hours used per experiment, working group, campaign and request,
against the allocations operators set per experiment and period.

What counts: every attempt (a job row) that ended in the period (``finished``), charged its
*core hours*: cores reserved x wall time as the batch system measured it (``core_time_s``:
sacct's CPUTimeRAW, HTCondor's slot time x RequestCpus), else the batch system's wall time x
the stage's cores, else the job wrapper's own wall time x cores (an attempt whose batch system
had no figures). Attempts that succeeded are *used*; those that failed, were lost or were
cancelled are *wasted*; attempts that ended but are not finalized yet count in the total only.
*CPU hours* are the CPU time the attempts consumed (``cpu_time_s``: sacct's TotalCPU, the
ClassAd's RemoteUserCpu + RemoteSysCpu, the local runner's ``wait4``); their ratio to the core
hours is the CPU efficiency.

Every figure is one aggregate query per level (``GROUP BY``), whatever the number of
attempts; visibility goes through ``visible_to`` on the querysets passed in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Count, F, FloatField, Max, Q, QuerySet, Sum, Value
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from campaigns.choices import JobState
from campaigns.models import Job

from ..models import Allocation

HOUR = 3600.0
WASTED_STATES = (JobState.FAILED, JobState.LOST, JobState.CANCELLED)
MEASURED_SOURCES = ("sacct", "classad", "rusage")

LEVELS: dict[str, tuple[str, str, str]] = {
    # level: (id, label, name) paths from Job
    "experiment": (
        "stage__campaign__experiment_id",
        "stage__campaign__experiment__slug",
        "stage__campaign__experiment__name",
    ),
    "group": (
        "stage__request__physics_group_id",
        "stage__request__physics_group__slug",
        "stage__request__physics_group__name",
    ),
    "campaign": ("stage__campaign_id", "stage__campaign__name", "stage__campaign__name"),
    "request": ("stage__request_id", "stage__request__number", "stage__request__title"),
}
EXPERIMENT = "stage__campaign__experiment__slug"
"""The ledger's levels. Every row also names its experiment (:data:`EXPERIMENT`)."""


def _seconds(name: str) -> Cast:
    return Cast(F(name), FloatField())


def charged_seconds() -> Coalesce:
    """Core seconds an attempt is charged (see the module docstring for the fallbacks)."""
    cores = _seconds("stage__cores")
    return Coalesce(
        _seconds("core_time_s"),
        _seconds("wall_time_s") * cores,
        _seconds("walltime_observed_s") * cores,
        Value(0.0),
        output_field=FloatField(),
    )


@dataclass
class Usage:
    """What one experiment, group, campaign or request used in a period."""

    id: int | None
    label: str
    name: str
    experiment: str = ""
    attempts: int = 0
    succeeded: int = 0
    wasted: int = 0
    measured: int = 0
    core_hours: float = 0.0
    succeeded_core_hours: float = 0.0
    wasted_core_hours: float = 0.0
    cpu_hours: float = 0.0
    max_rss_kb: int | None = None

    @property
    def efficiency(self) -> float | None:
        """CPU time over core time of the measured attempts (None: nothing measured)."""
        return self.cpu_hours / self.core_hours if self.core_hours > 0 and self.measured else None

    @property
    def wasted_percent(self) -> float:
        return 100.0 * self.wasted_core_hours / self.core_hours if self.core_hours > 0 else 0.0


def _annotations(scope: Q | None = None) -> dict:
    """The ledger's aggregates, over the attempts in ``scope`` (all when None)."""

    def within(condition: Q | None) -> Q | None:
        if scope is None:
            return condition
        return scope if condition is None else scope & condition

    charged = charged_seconds()
    succeeded = Q(state=JobState.SUCCEEDED)
    wasted = Q(state__in=WASTED_STATES)
    return {
        "n": Count("id", filter=within(None)),
        "n_ok": Count("id", filter=within(succeeded)),
        "n_wasted": Count("id", filter=within(wasted)),
        "n_measured": Count("id", filter=within(Q(usage_source__in=MEASURED_SOURCES))),
        "core_s": Sum(charged, filter=within(None)),
        "ok_core_s": Sum(charged, filter=within(succeeded)),
        "wasted_core_s": Sum(charged, filter=within(wasted)),
        "cpu_s": Sum(Coalesce(_seconds("cpu_time_s"), Value(0.0)), filter=within(None)),
        "peak_rss": Max("max_rss_kb", filter=within(None)),
    }


def _usage(row: dict, id_key: str, label_key: str, name_key: str) -> Usage:
    return Usage(
        id=row[id_key],
        label=row[label_key] or "",
        name=row[name_key] or "",
        experiment=row.get(EXPERIMENT) or "",
        attempts=row["n"],
        succeeded=row["n_ok"],
        wasted=row["n_wasted"],
        measured=row["n_measured"],
        core_hours=(row["core_s"] or 0.0) / HOUR,
        succeeded_core_hours=(row["ok_core_s"] or 0.0) / HOUR,
        wasted_core_hours=(row["wasted_core_s"] or 0.0) / HOUR,
        cpu_hours=(row["cpu_s"] or 0.0) / HOUR,
        max_rss_kb=row["peak_rss"],
    )


def day_start(day: dt.date) -> dt.datetime:
    """The first moment of ``day`` in the site's time zone."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def ended_between(jobs: QuerySet[Job], start: dt.date, end: dt.date) -> QuerySet[Job]:
    """Attempts that ended from the first moment of ``start`` to the last of ``end``."""
    return jobs.filter(
        finished__gte=day_start(start), finished__lt=day_start(end + dt.timedelta(days=1))
    )


def usage_by(level: str, jobs: QuerySet[Job], start: dt.date, end: dt.date) -> list[Usage]:
    """One row per experiment, group, campaign or request (``level``) for the attempts that
    ended from day ``start`` to day ``end`` included: one query."""
    return usage_between(level, jobs, day_start(start), day_start(end + dt.timedelta(days=1)))


def usage_between(
    level: str, jobs: QuerySet[Job], since: dt.datetime, until: dt.datetime
) -> list[Usage]:
    """``usage_by`` for the attempts that ended from ``since`` to before ``until``."""
    id_key, label_key, name_key = LEVELS[level]
    rows = (
        jobs.filter(finished__gte=since, finished__lt=until)
        .values(*dict.fromkeys((id_key, label_key, name_key, EXPERIMENT)))
        .annotate(**_annotations())
        .order_by(EXPERIMENT, label_key, id_key)
    )
    return [_usage(row, id_key, label_key, name_key) for row in rows]


def add_up(rows: list[Usage], name: str) -> Usage:
    """The sum of ``rows`` (peak memory: the largest)."""
    total = Usage(id=None, label="total", name=name)
    for row in rows:
        total.attempts += row.attempts
        total.succeeded += row.succeeded
        total.wasted += row.wasted
        total.measured += row.measured
        total.core_hours += row.core_hours
        total.succeeded_core_hours += row.succeeded_core_hours
        total.wasted_core_hours += row.wasted_core_hours
        total.cpu_hours += row.cpu_hours
        if row.max_rss_kb is not None:
            total.max_rss_kb = max(total.max_rss_kb or 0, row.max_rss_kb)
    return total


@dataclass
class AllocationStatus:
    """An allocation and what its experiment used of it, with the projection to its end."""

    allocation: Allocation
    used: Usage
    now: dt.datetime

    @property
    def period_start(self) -> dt.datetime:
        return day_start(self.allocation.start)

    @property
    def period_end(self) -> dt.datetime:
        return day_start(self.allocation.end + dt.timedelta(days=1))

    @property
    def elapsed_fraction(self) -> float:
        length = (self.period_end - self.period_start).total_seconds()
        elapsed = (min(self.now, self.period_end) - self.period_start).total_seconds()
        return min(max(elapsed / length, 0.0), 1.0)

    @property
    def used_percent(self) -> float:
        granted = self.allocation.cpu_hours
        return 100.0 * self.used.core_hours / granted if granted else 0.0

    @property
    def projected_core_hours(self) -> float | None:
        """Core hours at the period's end if use goes on at the rate so far (None before
        the period starts). The rate is the average since the period began."""
        fraction = self.elapsed_fraction
        if fraction <= 0:
            return None
        return self.used.core_hours / fraction

    @property
    def projected_percent(self) -> float | None:
        projected = self.projected_core_hours
        granted = self.allocation.cpu_hours
        if projected is None or not granted:
            return None
        return 100.0 * projected / granted

    @property
    def status(self) -> str:
        """``over`` (used more than granted), ``at_risk`` (will at this rate), ``ok``."""
        if self.used.core_hours > self.allocation.cpu_hours:
            return "over"
        projected = self.projected_core_hours
        if projected is not None and projected > self.allocation.cpu_hours:
            return "at_risk"
        return "ok"

    @property
    def badge(self) -> str:
        """The CSS class of the status badge."""
        return {"over": "bad", "at_risk": "warn"}.get(self.status, "ok")

    @property
    def status_label(self) -> str:
        return {"over": "Over allocation", "at_risk": "Will overrun"}.get(self.status, "Within")


def allocation_statuses(
    allocations: QuerySet[Allocation], jobs: QuerySet[Job], now: dt.datetime | None = None
) -> list[AllocationStatus]:
    """Each allocation with its experiment's use in its own period: two queries in all (the
    allocations, and one aggregate over the attempts with a filter per allocation)."""
    now = now or timezone.now()
    allocations = list(allocations.select_related("experiment").order_by("experiment__name"))
    if not allocations:
        return []
    annotations = {}
    either = Q()
    for allocation in allocations:
        period = Q(
            stage__campaign__experiment_id=allocation.experiment_id,
            finished__gte=day_start(allocation.start),
            finished__lt=day_start(allocation.end + dt.timedelta(days=1)),
        )
        either |= period
        for name, aggregate in _annotations(period).items():
            annotations[f"a{allocation.pk}_{name}"] = aggregate
    totals = jobs.filter(either).aggregate(**annotations)
    statuses = []
    for allocation in allocations:
        row = {name: totals[f"a{allocation.pk}_{name}"] for name in _annotations()}
        row.update(
            {EXPERIMENT: allocation.experiment.slug},
            id=allocation.experiment_id,
            label=allocation.experiment.slug,
            name=allocation.experiment.name,
        )
        statuses.append(AllocationStatus(allocation, _usage(row, "id", "label", "name"), now))
    return statuses


def current_allocations(allocations: QuerySet[Allocation], day: dt.date) -> QuerySet[Allocation]:
    """The allocations whose period includes ``day``."""
    return allocations.filter(start__lte=day, end__gte=day)


def month_to_date(today: dt.date) -> tuple[dt.date, dt.date]:
    """The ledger's default period: the first of this month to today."""
    return today.replace(day=1), today


@dataclass
class Ledger:
    """Everything the accounting page, the API, the CSV and the report show."""

    start: dt.date
    end: dt.date
    allocations: list[AllocationStatus]
    levels: dict[str, list[Usage]] = field(default_factory=dict)

    def total(self) -> Usage:
        """The experiments' rows added up."""
        return add_up(self.levels.get("experiment", []), "All experiments")


def build_ledger(
    jobs: QuerySet[Job],
    allocations: QuerySet[Allocation],
    start: dt.date | None = None,
    end: dt.date | None = None,
    now: dt.datetime | None = None,
    levels: tuple[str, ...] = tuple(LEVELS),
) -> Ledger:
    """The ledger for the attempts and allocations given (already narrowed to what the
    viewer may see): the period's use by level, and the allocations current ``now``."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    default_start, default_end = month_to_date(today)
    start, end = start or default_start, end or default_end
    ledger = Ledger(
        start=start,
        end=end,
        allocations=allocation_statuses(current_allocations(allocations, today), jobs, now),
    )
    for level in levels:
        ledger.levels[level] = usage_by(level, jobs, start, end)
    return ledger

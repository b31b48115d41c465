"""Progress from the stage counters: events and jobs by state, never by scanning jobs.

The poller and finalize keep, on every ``Stage``, its attempts by state (``n_<state>``),
the attempts another attempt replaced (``retried_<state>``) and ``events_done`` (events
of its succeeded jobs). Progress in events is what a sample's *last* stage has done (the
events the physicist asked for went through the whole workflow); jobs by state are
summed over every stage.

Jobs and attempts are counted apart: ``Progress.jobs`` counts each job once, in the
state of its latest attempt (``n_<state> - retried_<state>``), so a job that succeeded
on its third attempt is one succeeded job; the two failed attempts before it are in
``Progress.attempts_retried``. Bars and totals show jobs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Case, Count, F, Max, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Least

from campaigns.choices import ACTIVE_JOB_STATES, OPEN_JOB_STATES, JobState
from campaigns.models import COUNTER_FOR_STATE, RETRIED_COUNTER_FOR_STATE, Stage
from campaigns.services.blockage import gave_up, gave_up_reason, is_blocked

STAGE_FIELDS = (
    "id",
    "campaign_id",
    "request_id",
    "sample_id",
    "position",
    "name",
    "input_stage_id",
    "jobs_total",
    "sample__events",
    "sample__name",
    *COUNTER_FOR_STATE.values(),
    *RETRIED_COUNTER_FOR_STATE.values(),
)
# Replaced attempts that had not succeeded: the failed, lost or cancelled attempts retried.
RETRIED_UNSUCCESSFUL = tuple(s for s in RETRIED_COUNTER_FOR_STATE if s != JobState.SUCCEEDED)


def _zero_jobs() -> dict[str, int]:
    return dict.fromkeys(JobState.values, 0)


@dataclass
class Progress:
    """Events done of the target, jobs by the state of their latest attempt, and the
    attempts that failed (were lost or cancelled) and were tried again, of some work."""

    events_done: int = 0
    events_target: int = 0
    jobs: dict[str, int] = field(default_factory=_zero_jobs)
    jobs_total: int = 0
    # Stages whose remaining jobs all gave up: ``[(stage name, jobs), ...]`` (blockage).
    gave_up: list[tuple[str, int]] = field(default_factory=list)

    @property
    def blocked_reason(self) -> str:
        """Why this work is blocked ("" when it is not)."""
        return gave_up_reason(self.gave_up)

    attempts_retried: int = 0

    @property
    def fraction(self) -> float:
        if not self.events_target:
            return 0.0
        return min(self.events_done / self.events_target, 1.0)

    @property
    def percent(self) -> float:
        """Rounded down to one decimal, so 99.96% never shows as 100%."""
        return int(self.fraction * 1000) / 10

    @property
    def remaining(self) -> int:
        return max(self.events_target - self.events_done, 0)

    @property
    def finished(self) -> bool:
        return self.events_target > 0 and self.events_done >= self.events_target

    @property
    def running(self) -> int:
        return self.jobs.get(JobState.RUNNING, 0)

    @property
    def succeeded(self) -> int:
        return self.jobs.get(JobState.SUCCEEDED, 0)

    @property
    def in_flight(self) -> int:
        return sum(self.jobs.get(s, 0) for s in ACTIVE_JOB_STATES)

    @property
    def failed(self) -> int:
        """Jobs whose latest attempt failed or was lost: given up, not being retried."""
        return self.jobs.get(JobState.FAILED, 0) + self.jobs.get(JobState.LOST, 0)

    @property
    def started(self) -> bool:
        """A job ran (or finished): the counters moved past queued."""
        return self.attempts_retried > 0 or any(
            self.jobs.get(s, 0)
            for s in (JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED, JobState.LOST)
        )

    def add(self, other: Progress) -> None:
        self.events_done += other.events_done
        self.events_target += other.events_target
        self.jobs_total += other.jobs_total
        self.gave_up += other.gave_up
        self.attempts_retried += other.attempts_retried
        for state, n in other.jobs.items():
            self.jobs[state] = self.jobs.get(state, 0) + n


@dataclass
class StageProgress:
    """One stage's counters, and whether it is a last stage of its sample."""

    row: dict[str, Any]
    progress: Progress
    last: bool

    @property
    def name(self) -> str:
        return self.row["name"]

    @property
    def position(self) -> int:
        return self.row["position"]

    @property
    def job_percent(self) -> float:
        total = self.progress.jobs_total
        return int(1000 * min(self.progress.succeeded / total, 1.0)) / 10 if total else 0.0


@dataclass
class Breakdown:
    """Progress of campaigns, requests, samples and stages from one query of stage rows."""

    campaigns: dict[int, Progress] = field(default_factory=dict)
    requests: dict[int, Progress] = field(default_factory=dict)
    samples: dict[int, Progress] = field(default_factory=dict)
    stages: dict[int, StageProgress] = field(default_factory=dict)
    sample_names: dict[int, str] = field(default_factory=dict)
    sample_request: dict[int, int] = field(default_factory=dict)
    sample_campaign: dict[int, int] = field(default_factory=dict)

    def stages_of(self, sample_id: int) -> list[StageProgress]:
        return sorted(
            (s for s in self.stages.values() if s.row["sample_id"] == sample_id),
            key=lambda s: s.position,
        )

    def samples_of(self, request_id: int) -> list[int]:
        return [sid for sid, rid in self.sample_request.items() if rid == request_id]


def jobs_by_state(row: dict[str, Any]) -> dict[str, int]:
    """Jobs by the state of their latest attempt from counter columns (``n_<state>``,
    ``retried_<state>``) of a stage row or of sums named by the state (``<state>``,
    ``retried_<state>``)."""
    jobs = {}
    for state, column in COUNTER_FOR_STATE.items():
        attempts = row[column] if column in row else row[state]
        retried = row.get(RETRIED_COUNTER_FOR_STATE.get(state, ""), 0)
        jobs[state] = max(int(attempts or 0) - int(retried or 0), 0)
    return jobs


def attempts_retried(row: dict[str, Any]) -> int:
    return sum(int(row.get(RETRIED_COUNTER_FOR_STATE[s]) or 0) for s in RETRIED_UNSUCCESSFUL)


def stage_progress(row: dict[str, Any], last: bool) -> Progress:
    """A stage row's progress; events count only on a last stage (capped at the target)."""
    target = int(row["sample__events"] or 0) if last else 0
    done = min(int(row.get("events_done") or 0), target) if last else 0
    jobs = jobs_by_state(row)
    total = int(row["jobs_total"] or 0)
    open_jobs = sum(jobs[s] for s in OPEN_JOB_STATES)
    stuck = gave_up(total, jobs[JobState.SUCCEEDED], open_jobs)
    lost = [(row["name"], stuck)] if is_blocked(total, jobs[JobState.SUCCEEDED], open_jobs) else []
    return Progress(done, target, jobs, total, lost, attempts_retried(row))


def breakdown(rows: Iterable[dict[str, Any]]) -> Breakdown:
    """Aggregate stage rows (``Stage.values(*STAGE_FIELDS, "events_done")``) upwards.

    A last stage is one no stage of the same sample reads from.
    """
    rows = list(rows)
    feeding = {r["input_stage_id"] for r in rows if r["input_stage_id"]}
    result = Breakdown()
    for r in sorted(rows, key=lambda r: (r["campaign_id"], r["request_id"], r["sample_id"])):
        last = r["id"] not in feeding
        p = stage_progress(r, last)
        result.stages[r["id"]] = StageProgress(r, p, last)
        for key, bucket in (
            (r["campaign_id"], result.campaigns),
            (r["request_id"], result.requests),
            (r["sample_id"], result.samples),
        ):
            bucket.setdefault(key, Progress()).add(p)
        result.sample_names[r["sample_id"]] = r["sample__name"]
        result.sample_request[r["sample_id"]] = r["request_id"]
        result.sample_campaign[r["sample_id"]] = r["campaign_id"]
    return result


def load_breakdown(stages: QuerySet[Stage]) -> Breakdown:
    """One query: the given stages' counters, aggregated per campaign, request and sample."""
    return breakdown(stages.order_by().values(*STAGE_FIELDS, "events_done"))


def totals(stages: QuerySet[Stage], key: str) -> dict[int, Progress]:
    """Progress grouped by ``key`` (``"campaign_id"`` or ``"request_id"``), summed in SQL.

    Two aggregate queries whatever the size: jobs by state over every stage,
    events over the last stages (those no stage reads from). For lists of many
    campaigns, where fetching every stage row would be wasteful.
    """
    sums = {state: Sum(column) for state, column in COUNTER_FOR_STATE.items()}
    sums.update({column: Sum(column) for column in RETRIED_COUNTER_FOR_STATE.values()})
    # Blocked stages in the same aggregate (no query more): how many jobs gave up, in how
    # many stages, and one stage's name for the reason.
    blocked = Q(**{f"{COUNTER_FOR_STATE[s]}__lte": 0 for s in OPEN_JOB_STATES}) & Q(
        jobs_total__gt=F("n_succeeded") - F("retried_succeeded")
    )
    result: dict[int, Progress] = {}
    for row in (
        stages.order_by()
        .values(key)
        .annotate(
            total=Sum("jobs_total"),
            gave_up_jobs=Sum(
                Case(
                    When(
                        blocked,
                        then=F("jobs_total") - F("n_succeeded") + F("retried_succeeded"),
                    ),
                    default=Value(0),
                )
            ),
            gave_up_stages=Count("id", filter=blocked),
            gave_up_name=Max("name", filter=blocked),
            **sums,
        )
    ):
        lost = []
        if row["gave_up_stages"]:
            name = row["gave_up_name"]
            if row["gave_up_stages"] > 1:
                name += f" and {row['gave_up_stages'] - 1} other stage(s)"
            lost = [(name, int(row["gave_up_jobs"] or 0))]
        result[row[key]] = Progress(
            jobs=jobs_by_state(row),
            jobs_total=int(row["total"] or 0),
            gave_up=lost,
            attempts_retried=attempts_retried(row),
        )
    last_stages = stages.filter(dependents__isnull=True)
    for row in (
        last_stages.order_by()
        .values(key)
        .annotate(
            done=Sum(Least(F("events_done"), F("sample__events"))),
            target=Sum("sample__events"),
        )
    ):
        p = result.setdefault(row[key], Progress())
        p.events_done = int(row["done"] or 0)
        p.events_target = int(row["target"] or 0)
    return result

"""The service-desk clock: how long a request waited at each step, from its transition log.

Measured from the first submission (a ticket reaches the operators as a submitted
request):

* **first response**: to the first operator decision on it (ask for information,
  approve or reject);
* **needs info**: time spent waiting for the liaison (``needs_info``), added up;
* **on hold**: time spent on hold, added up;
* **to approval**, **to first job** (the ``start`` transition execution records once a
  job ran) and **to completion**.

Open intervals (a request waiting now) count until now. Targets come from the
experiment's SLA (``Experiment.sla_*_hours``); a step is late when it took (or has
already been waiting) longer than its target. Aggregates give the median and the 90th
percentile per experiment and month (of the submission), and per operator (who gave the
first response). Pure functions over the log (``clock``); loaders read the transitions of
many requests in one query.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.utils import timezone

from requests_app.choices import DROPPED_STATES, RequestState
from requests_app.models import Experiment, ProductionRequest, Transition

RESPONSES = ("request_info", "approve", "reject")
# What is measured, in the order pages show it, with its label and its target field.
MEASURES: dict[str, tuple[str, str | None]] = {
    "first_response": ("First operator response", "sla_response_hours"),
    "needs_info": ("Waiting for the liaison", None),
    "on_hold": ("On hold", None),
    "to_approval": ("To approval", "sla_approval_hours"),
    "to_first_job": ("To first job", "sla_first_job_hours"),
    "to_completion": ("To completion", None),
}
MONTHS_SHOWN = 12


@dataclass(frozen=True, slots=True)
class Step:
    """One row of the log, as the clock needs it."""

    action: str
    from_state: str
    to_state: str
    at: dt.datetime
    actor_id: int | None = None


@dataclass
class Clock:
    """The durations of one request (seconds; None: not reached), and who answered first."""

    submitted_at: dt.datetime | None = None
    seconds: dict[str, float | None] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)  # still counting (measured until now)
    responder_id: int | None = None


def clock(steps: Iterable[Step], now: dt.datetime) -> Clock:
    """The clock of one request from its log (any order; edits are ignored)."""
    steps = sorted((s for s in steps if s.from_state != s.to_state), key=lambda s: s.at)
    result = Clock(seconds=dict.fromkeys(MEASURES))
    firsts: dict[str, dt.datetime] = {}
    spent = {RequestState.NEEDS_INFO: 0.0, RequestState.ON_HOLD: 0.0}
    entered: dict[str, dt.datetime] = {}
    for s in steps:
        if s.action == "submit" and result.submitted_at is None:
            result.submitted_at = s.at
        if s.action in RESPONSES and "response" not in firsts:
            firsts["response"] = s.at
            result.responder_id = s.actor_id
        for action in ("approve", "start", "complete"):
            if s.action == action:
                firsts.setdefault(action, s.at)
        if s.from_state in spent and s.from_state in entered:
            spent[s.from_state] += (s.at - entered.pop(s.from_state)).total_seconds()
        if s.to_state in spent:
            entered[s.to_state] = s.at
    for state, since in entered.items():  # still waiting there
        spent[state] += max((now - since).total_seconds(), 0.0)
    result.seconds["needs_info"] = spent[RequestState.NEEDS_INFO]
    result.seconds["on_hold"] = spent[RequestState.ON_HOLD]
    result.running = {
        {RequestState.NEEDS_INFO: "needs_info", RequestState.ON_HOLD: "on_hold"}[st]
        for st in entered
    }
    start = result.submitted_at
    if start is None:
        return result
    for measure, action in (
        ("first_response", "response"),
        ("to_approval", "approve"),
        ("to_first_job", "start"),
        ("to_completion", "complete"),
    ):
        if action in firsts:
            result.seconds[measure] = max((firsts[action] - start).total_seconds(), 0.0)
    return result


def _steps(request_ids: Iterable[int]) -> dict[int, list[Step]]:
    """The logs of many requests: one query."""
    logs: dict[int, list[Step]] = defaultdict(list)
    rows = Transition.objects.filter(request_id__in=list(request_ids)).values_list(
        "request_id", "action", "from_state", "to_state", "created", "actor_id"
    )
    for rid, action, src, dst, at, actor in rows.order_by("created", "id"):
        logs[rid].append(Step(action, src, dst, at, actor))
    return logs


@dataclass
class ClockRow:
    """A measure of one request for display: its duration against its target."""

    key: str
    label: str
    seconds: float | None
    target_s: float | None
    running: bool

    @property
    def late(self) -> bool:
        return (
            self.seconds is not None and self.target_s is not None and self.seconds > self.target_s
        )


def request_clock(request: ProductionRequest, now: dt.datetime | None = None) -> list[ClockRow]:
    """The request page's clock: every measure against the experiment's target (one query)."""
    now = now or timezone.now()
    c = clock(_steps([request.pk]).get(request.pk, []), now)
    experiment = request.experiment
    rows = []
    for key, (label, target_field) in MEASURES.items():
        target = getattr(experiment, target_field) * 3600 if target_field else None
        seconds = c.seconds.get(key)
        running = key in c.running
        # A step not reached yet while the request is open is still counting.
        dropped = request.state in DROPPED_STATES
        if seconds is None and c.submitted_at is not None and target is not None and not dropped:
            seconds, running = max((now - c.submitted_at).total_seconds(), 0.0), True
        rows.append(ClockRow(key, label, seconds, target, running))
    return rows


def quantile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank, so a figure that happened); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


@dataclass
class Aggregate:
    """Median and 90th percentile of each measure over a group of requests."""

    experiment: Experiment
    month: str  # YYYY-MM of the submission
    operator: str  # who answered first ("" for the experiment's row)
    requests: int
    median: dict[str, float | None]
    p90: dict[str, float | None]
    late: dict[str, int]  # requests over the target

    @property
    def cells(self) -> list[tuple[str, float | None, float | None, int]]:
        return [(k, self.median[k], self.p90[k], self.late.get(k, 0)) for k in MEASURES]


def aggregates(
    experiments: list[Experiment], now: dt.datetime | None = None, months: int = MONTHS_SHOWN
) -> tuple[list[Aggregate], list[Aggregate]]:
    """Per experiment and month, and per experiment, month and operator: three queries
    (requests, their logs, the operators' names) whatever the number of requests."""
    from django.contrib.auth import get_user_model

    now = now or timezone.now()
    since = now - dt.timedelta(days=31 * months)
    by_id = {e.pk: e for e in experiments}
    requests = list(
        ProductionRequest.objects.filter(experiment_id__in=list(by_id))
        .exclude(state=RequestState.DRAFT)
        .filter(created__gte=since)
        .values_list("pk", "experiment_id")
    )
    logs = _steps([pk for pk, _ in requests])
    groups: dict[tuple[int, str, int | None], list[Clock]] = defaultdict(list)
    for pk, eid in requests:
        c = clock(logs.get(pk, []), now)
        if c.submitted_at is None:
            continue
        month = timezone.localtime(c.submitted_at).strftime("%Y-%m")
        groups[(eid, month, None)].append(c)
        if c.responder_id is not None:
            groups[(eid, month, c.responder_id)].append(c)
    names = dict(
        get_user_model()
        .objects.filter(pk__in={k[2] for k in groups if k[2] is not None})
        .values_list("pk", "username")
    )
    per_experiment, per_operator = [], []
    for (eid, month, op), clocks in sorted(
        groups.items(), key=lambda kv: (by_id[kv[0][0]].name, kv[0][1], kv[0][2] or 0)
    ):
        e = by_id[eid]
        median, p90, late = {}, {}, {}
        for key, (_label, target_field) in MEASURES.items():
            values = [c.seconds[key] for c in clocks if c.seconds.get(key) is not None]
            median[key] = statistics.median(values) if values else None
            p90[key] = quantile(values, 0.9)
            if target_field:
                target = getattr(e, target_field) * 3600
                late[key] = sum(1 for v in values if v > target)
        agg = Aggregate(e, month, names.get(op, "") if op else "", len(clocks), median, p90, late)
        (per_operator if op else per_experiment).append(agg)
    return per_experiment, per_operator

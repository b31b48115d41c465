"""The service-desk clock of one request, from its transition log (the pure part).

Measured from the first submission (a ticket reaches the operators as a submitted
request): the first operator response, the time waiting for the liaison and on hold, and
the times to approval, first job and completion. Intake owns it because the log is
intake's and because the service-desk connector writes it on the ticket at each
transition (the connector may read intake, not monitoring); the SLA page's aggregates
(``monitoring.services.sla``) build on it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.utils import timezone

from ..choices import DROPPED_STATES, RequestState
from ..models import ProductionRequest, Transition

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


def steps_of(request_ids: Iterable[int]) -> dict[int, list[Step]]:
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
    return clock_rows(request, steps_of([request.pk]).get(request.pk, []), now)


def clock_rows(
    request: ProductionRequest, steps: Iterable[Step], now: dt.datetime, state: str | None = None
) -> list[ClockRow]:
    """Every measure of ``request`` from its log as of ``now``, against the experiment's
    targets; ``state``: the request's state at ``now`` (default: its state now)."""
    c = clock(steps, now)
    state = state or request.state
    experiment = request.experiment
    rows = []
    for key, (label, target_field) in MEASURES.items():
        target = getattr(experiment, target_field) * 3600 if target_field else None
        seconds = c.seconds.get(key)
        running = key in c.running
        # A step not reached yet while the request is open is still counting.
        dropped = state in DROPPED_STATES
        if seconds is None and c.submitted_at is not None and target is not None and not dropped:
            seconds, running = max((now - c.submitted_at).total_seconds(), 0.0), True
        rows.append(ClockRow(key, label, seconds, target, running))
    return rows


def duration_text(seconds: float) -> str:
    """``93784`` -> ``"1 d 2 h"``; ``125`` -> ``"2 min"``: two units at most (the pages'
    ``duration`` filter, the ticket's work notes)."""
    seconds = max(int(seconds), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min" if minutes else "under a minute"


def clock_text(rows: Iterable[ClockRow]) -> str:
    """The clock in one line for a ticket's work note: the steps reached and the waits
    that happened, each against its target ("first operator response 3 h (target 1 d)")."""
    parts = []
    for row in rows:
        if row.seconds is None or (row.seconds <= 0 and row.target_s is None):
            continue
        text = f"{row.label.lower()} {duration_text(row.seconds)}"
        if row.running:
            text += " and counting"
        if row.target_s is not None:
            text += f" (target {duration_text(row.target_s)}{', over' if row.late else ''})"
        parts.append(text)
    return "; ".join(parts)

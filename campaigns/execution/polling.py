"""Polling: one bulk status query per backend per cycle; only the jobs that changed are written.

Jobs in flight (queued, running, held) are asked about in one ``backend.status`` call per
backend. Moves between the in-flight states are written at once, in bulk, with the stage
counters in the same transaction. A job the batch system reports finished keeps its
in-flight state and gets its ``outcome`` (and exit code) recorded: ``finalize`` turns it
into succeeded (outputs declared) or failed/lost/cancelled (and a retry), so a job is never
counted succeeded before its outputs are in the catalogue.

An unavailable backend changes nothing: its jobs are not failed or lost because the
controller did not answer this minute (DESIGN.md).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from django.db import OperationalError, connection, transaction
from django.utils import timezone

from ..batch import ACTIVE_STATES, BackendError, BackendUnavailable, JobStatus
from ..choices import ACTIVE_JOB_STATES, JobState
from ..models import COUNTER_FOR_STATE, Campaign, Job, Stage
from . import backends
from .bulk import bulk_add, bulk_set_rows

log = logging.getLogger(__name__)

BULK = 500
DEADLOCK_RETRIES = 2


@dataclass
class PollReport:
    """What one poll cycle saw and wrote."""

    polled: int = 0
    moved: int = 0  # in-flight state changes written
    finished: int = 0  # outcomes recorded for finalize
    unavailable: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    cancelled_campaigns: list[int] = field(default_factory=list)


class Change(NamedTuple):
    """One job whose batch state differs from ours (a tuple: a poll makes thousands)."""

    job_id: int
    stage_id: int
    old_state: str
    new_state: str  # == old_state when only an outcome is recorded
    status: JobStatus


class InFlight(NamedTuple):
    """A job in flight as the poller reads it: a row, not a model instance. It has the
    ``batch_id`` and ``workdir`` of a ``JobRef``, so it goes to ``status()`` as is."""

    id: int
    stage_id: int
    batch_id: str
    workdir: str
    state: str
    backend: str


def in_flight() -> dict[str, list[InFlight]]:
    """Jobs a batch system owns and whose end was not seen yet, by backend (one query).

    Rows straight from the cursor: 100,000 of them through the ORM's row machinery, and
    a ``JobRef`` made for each, took as long as the rest of the poll (bench/poll.py).
    """
    query = (
        Job.objects.filter(state__in=sorted(ACTIVE_JOB_STATES), outcome="")
        .exclude(batch_id="")
        .values_list(*InFlight._fields)
    )
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = list(map(InFlight._make, cursor.fetchall()))
    backends_seen = {row.backend for row in rows}
    if len(backends_seen) == 1:  # the common case: one batch system, no regrouping
        return {backends_seen.pop(): rows}
    jobs: dict[str, list[InFlight]] = defaultdict(list)
    for row in rows:
        jobs[row.backend].append(row)
    return jobs


def compare(jobs: Sequence[InFlight], statuses: Mapping[str, JobStatus]) -> list[Change]:
    """The jobs whose reported state differs from ours, and those that ended."""
    changes = []
    for job in jobs:
        status = statuses.get(job.batch_id)
        if status is None:
            continue
        if status.state in ACTIVE_STATES:
            if status.state != job.state:
                changes.append(Change(job.id, job.stage_id, job.state, str(status.state), status))
        else:
            changes.append(Change(job.id, job.stage_id, job.state, job.state, status))
    return changes


def poll(now: datetime | None = None) -> PollReport:
    """One cycle over every backend with jobs in flight."""
    report = PollReport()
    report.cancelled_campaigns = cancel_requested()
    for name, jobs in in_flight().items():
        try:
            statuses = backends.backend(name).status(jobs)
        except BackendUnavailable as exc:
            log.warning(
                "backend %s unavailable; %d jobs keep their state: %s", name, len(jobs), exc
            )
            report.unavailable.add(name)
            continue
        except BackendError as exc:
            log.error("backend %s: status failed: %s", name, exc)
            report.errors.append(f"{name}: {exc}")
            continue
        report.polled += len(jobs)
        moved, finished = apply(compare(jobs, statuses), now or timezone.now())
        report.moved += moved
        report.finished += finished
    return report


def apply(changes: Sequence[Change], now: datetime) -> tuple[int, int]:
    """Write the changes in bulk with the stage counters, in one transaction.

    Every write is a compare-and-set on the state the poll read (and an outcome not yet
    recorded): a job that another worker moved since (finalize, a cancel, stuck
    detection) is left alone rather than overwritten, and the stage counters move by
    what the writes really changed.
    """
    if not changes:
        return 0, 0
    moves: list[tuple] = []  # (id, old state, new state, failure_reason)
    ends: list[tuple] = []  # (id, state, outcome, exit_code, failure_reason)
    for change in sorted(changes):  # by job id: rows are locked in one order (see below)
        reason = change.status.reason[:500]
        if change.new_state != change.old_state:
            moves.append((change.job_id, change.old_state, change.new_state, reason))
        else:
            outcome = str(change.status.state)
            ends.append((change.job_id, change.old_state, outcome, change.status.exit_code, reason))
    for attempt in range(DEADLOCK_RETRIES + 1):
        try:
            return _apply(moves, ends, now)
        except OperationalError as exc:
            if not _is_deadlock(exc) or attempt == DEADLOCK_RETRIES:
                raise
            log.warning("poll: deadlock writing %d changes, again", len(changes))
    raise AssertionError("unreachable")


def _apply(moves: list[tuple], ends: list[tuple], now: datetime) -> tuple[int, int]:
    with transaction.atomic():
        if connection.vendor == "postgresql":
            moved, finished = _apply_arrays(moves, ends, now)
        else:
            moved, finished = _apply_rows(moves, ends, now)
        deltas: dict[int, Counter[str]] = defaultdict(Counter)
        for stage_id, old, new in moved:
            deltas[stage_id][old] -= 1
            deltas[stage_id][new] += 1
        bulk_add(
            Stage,
            {
                stage_id: {COUNTER_FOR_STATE[state]: n for state, n in delta.items()}
                for stage_id, delta in deltas.items()
            },
        )
    return len(moved), finished


def _is_deadlock(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == "40P01"


def _apply_arrays(
    moves: list[tuple], ends: list[tuple], now: datetime
) -> tuple[list[tuple[int, str, str]], int]:
    """PostgreSQL: one compare-and-set ``UPDATE ... FROM unnest(...)`` for the moves
    (returning what moved, for the counters) and one for the ends.

    No re-read under lock first: the ``WHERE`` is the check, evaluated again on the row's
    newest version when another transaction changed it meanwhile. The arrays are sorted
    by job id and the plan walks them with the primary key's index, so rows are locked in
    id order, as stuck detection and finalize lock theirs; were the planner ever to
    choose otherwise, PostgreSQL detects the deadlock and ``apply`` writes again.
    """
    table = connection.ops.quote_name(Job._meta.db_table)
    moved: list[tuple[int, str, str]] = []
    finished = 0
    with connection.cursor() as cursor:
        if moves:
            cursor.execute(
                f"UPDATE {table} AS t SET state = v.new, state_since = %s, "  # noqa: S608
                "started = COALESCE(t.started, CASE WHEN v.new = %s THEN %s::timestamptz END), "
                "failure_reason = v.reason "
                "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) "
                "AS v(id, old, new, reason) "
                "WHERE t.id = v.id AND t.state = v.old AND t.outcome = '' "
                "RETURNING t.stage_id, v.old, v.new",
                [now, JobState.RUNNING, now, *_columns(moves, 4)],
            )
            moved = cursor.fetchall()
        if ends:
            cursor.execute(
                f"UPDATE {table} AS t SET outcome = v.outcome, exit_code = v.code, "  # noqa: S608
                "finished = %s, failure_reason = v.reason "
                "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::int[], %s::text[]) "
                "AS v(id, state, outcome, code, reason) "
                "WHERE t.id = v.id AND t.state = v.state AND t.outcome = ''",
                [now, *_columns(ends, 5)],
            )
            finished = cursor.rowcount
    return moved, finished


def _columns(rows: list[tuple], width: int) -> list[list[Any]]:
    """Rows -> one list per column (the arrays ``unnest`` takes)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


def _apply_rows(
    moves: list[tuple], ends: list[tuple], now: datetime
) -> tuple[list[tuple[int, str, str]], int]:
    """Elsewhere (SQLite, whose write lock is taken at BEGIN): read the rows, write those
    whose state is still the one polled."""
    ids = [m[0] for m in moves] + [e[0] for e in ends]
    current: dict[int, tuple[int, str, str, Any]] = {}
    for chunk in _chunks(ids):
        for pk, stage_id, state, outcome, started in Job.objects.filter(pk__in=chunk).values_list(
            "id", "stage_id", "state", "outcome", "started"
        ):
            current[pk] = (stage_id, state, outcome, started)
    moved, move_rows, end_rows = [], [], []
    for pk, old, new, reason in moves:
        stage_id, state, outcome, started = current.get(pk, (None, None, None, None))
        if state != old or outcome:
            continue
        if started is None and new == JobState.RUNNING:
            started = now
        move_rows.append((pk, new, now, started, reason))
        moved.append((stage_id, old, new))
    for pk, old, outcome_new, code, reason in ends:
        _stage, state, outcome, _started = current.get(pk, (None, None, None, None))
        if state != old or outcome:
            continue
        end_rows.append((pk, outcome_new, code, now, reason))
    bulk_set_rows(Job, ["state", "state_since", "started", "failure_reason"], move_rows)
    bulk_set_rows(Job, ["outcome", "exit_code", "finished", "failure_reason"], end_rows)
    return moved, len(end_rows)


def _chunks(ids: list[int], size: int = BULK) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def cancel_requested() -> list[int]:
    """Cancel at the batch system what cancelled campaigns still have in flight.

    The campaign service sets ``cancel_pending``; the jobs come back from the next polls as
    cancelled (or succeeded, if they finished first) and finalize records them. The flag is
    cleared only once every backend took the cancel, so an unreachable one is tried again.
    """
    done = []
    for campaign_id in Campaign.objects.filter(cancel_pending=True).values_list("id", flat=True):
        by_backend: dict[str, list[str]] = defaultdict(list)
        for name, batch_id in (
            Job.objects.filter(stage__campaign_id=campaign_id, state__in=sorted(ACTIVE_JOB_STATES))
            .exclude(batch_id="")
            .values_list("backend", "batch_id")
        ):
            by_backend[name].append(batch_id)
        try:
            for name, ids in by_backend.items():
                backends.backend(name).cancel(ids)
        except BackendError as exc:
            log.warning(
                "campaign %s: cancel at the batch system failed, retrying: %s", campaign_id, exc
            )
            continue
        Campaign.objects.filter(pk=campaign_id).update(cancel_pending=False)
        done.append(campaign_id)
    return done

"""Polling: one bulk status query per backend per cycle; only the jobs that changed are written.

Jobs in flight (queued, running, held) are asked about in one ``backend.status`` call per
backend; which jobs are in flight comes from the view this process keeps between polls
(``inflight.KNOWN``), brought up to date by reading only the jobs that changed lately.
Moves between the in-flight states are written at once, in bulk, with the stage counters
in the same transaction. A job the batch system reports finished keeps its
in-flight state and gets its ``outcome`` (and exit code) recorded: ``finalize`` turns it
into succeeded (outputs declared) or failed/lost/cancelled (and a retry), so a job is never
counted succeeded before its outputs are in the catalogue.

An unavailable backend changes nothing: its jobs are not failed or lost because the
controller did not answer this minute: transient trouble is not a job state.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from django.db import OperationalError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from ..batch import ACTIVE_STATES, BackendError, BackendUnavailable, JobStatus, StatusAnswer
from ..choices import ACTIVE_JOB_STATES, JobState
from ..models import COUNTER_FOR_STATE, Campaign, CampaignRequest, Job, Stage
from . import backends, controls, leases
from .bulk import array_literal, bulk_add, bulk_set_rows
from .inflight import KNOWN, BackendView, InFlight

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
    busy: set[str] = field(default_factory=set)  # polled by another worker meanwhile
    errors: list[str] = field(default_factory=list)
    cancelled_campaigns: list[int] = field(default_factory=list)
    controls: dict[str, int] = field(default_factory=dict)  # batch controls sent (by answer)


class Change(NamedTuple):
    """One job whose batch state differs from ours (a tuple: a poll makes thousands)."""

    job_id: int
    stage_id: int
    old_state: str
    new_state: str  # == old_state when only an outcome is recorded
    status: JobStatus


class Written(NamedTuple):
    """What ``write`` changed: ``moved`` (job id, stage id, old state, new state), the ids
    of the jobs whose end it recorded, and those it left alone (moved meanwhile)."""

    moved: list[tuple[int, int, str, str]]
    ended: list[int]
    missed: list[int]


def compare(jobs: Iterable[InFlight], statuses: Mapping[str, JobStatus]) -> list[Change]:
    """The jobs whose reported state differs from ours, and those that ended.

    Runs over every job in flight on every poll, so the common case (reported as we have
    it) costs one lookup and one comparison: an ended job's state never equals an
    in-flight one.
    """
    changes = []
    get = statuses.get
    for job in jobs:
        status = get(job.batch_id)
        if status is None or status.state == job.state:
            continue
        new = str(status.state) if status.state in ACTIVE_STATES else job.state
        changes.append(Change(job.id, job.stage_id, job.state, new, status))
    return changes


def compare_view(view: BackendView, answer: Mapping[str, JobStatus]) -> list[Change]:
    """``compare`` for a backend's jobs in flight held in a view, answered with a
    :class:`StatusAnswer`: the same changes, found as set differences state by state.

    The batch system lists every job in flight and few of them changed; a set difference
    walks the listed batch ids in C (a few milliseconds per 100,000 here, against 40-60 ms
    for one lookup and comparison each in Python), so what the poll does in Python follows
    the changes (bench/poll.py). An answer without ``by_state`` takes ``compare``.
    """
    if not isinstance(answer, StatusAnswer) or not answer.consistent():
        return compare(view.by_id.values(), answer)
    changes = []
    by_batch = view.by_batch
    for state, reported in answer.by_state.items():
        if state in ACTIVE_STATES:  # listed in a state of flight: changed if ours differs
            differ = reported.difference(view.in_state.get(state, ()))
        else:  # ended: every one is news
            differ = reported
        for batch_id in differ:
            job = by_batch.get(batch_id)
            if job is None:  # not one of ours in flight (the backend listed more)
                continue
            new = str(state) if state in ACTIVE_STATES else job.state
            changes.append(Change(job.id, job.stage_id, job.state, new, answer[batch_id]))
    return changes


def poll(now: datetime | None = None, endpoints: Collection[str] | None = None) -> PollReport:
    """One cycle over every backend with jobs in flight, or over ``endpoints`` only.

    A cycle over every backend first sends what the operators asked for (cancels, batch
    controls); a cycle over some endpoints is one of the per-endpoint polls that
    ``dispatch`` sent, which did that once for all of them.
    """
    report = PollReport()
    if endpoints is None:
        before_polls(report)
    # One poller per backend at a time (leases.py): a batch command that hangs holds one
    # worker, never all of them. Each lease is given back as soon as its answer is written.
    held: dict[str, leases.Lease] = {}
    in_flight = {}
    for name, jobs in KNOWN.current().items():
        if endpoints is not None and name not in endpoints:
            continue
        lease = leases.try_acquire(f"poll:{name}")
        if lease is None:
            report.busy.add(name)
            continue
        held[name] = lease
        in_flight[name] = jobs
    try:
        for name, jobs, answer in ask(in_flight):
            try:
                # A database error here is not the endpoint's: it stops the cycle, and the
                # task is retried for the errors known to be transient.
                take(name, jobs, answer, report, now)
            finally:
                held.pop(name).release()
    finally:
        for lease in held.values():
            lease.release()
    return report


def before_polls(report: PollReport) -> None:
    """What the operators asked for, sent before the status queries so that this cycle
    already sees it: campaigns' cancels, then holds, releases, priorities and moves."""
    report.cancelled_campaigns = cancel_requested()
    try:
        report.controls = asdict(controls.apply_pending())
    except Exception:  # a control gone wrong must not stop the polling of every job
        log.exception("sending the batch controls failed; tried again next cycle")


def dispatch() -> tuple[PollReport, list[str]]:
    """The start of a cycle polled endpoint by endpoint (``OPOS_POLL_PER_ENDPOINT``): what
    the operators asked for, then the endpoints with jobs in flight, each to be polled by
    a task of its own, so that several workers poll several clusters in processes of
    their own (the lease still keeps one poller per endpoint)."""
    report = PollReport()
    before_polls(report)
    return report, sorted(KNOWN.current())


def take(
    name: str, jobs: list[InFlight], answer: Answer, report: PollReport, now: datetime | None
) -> None:
    """Write what backend ``name`` answered (or note that it did not)."""
    if isinstance(answer, BackendUnavailable):
        log.warning("backend %s unavailable; %d jobs keep their state: %s", name, len(jobs), answer)
        report.unavailable.add(name)
        return
    if isinstance(answer, BackendError):
        log.error("backend %s: status failed: %s", name, answer)
        report.errors.append(f"{name}: {answer}")
        return
    report.polled += len(jobs)
    written = write(compare_view(KNOWN.view(name), answer), now or timezone.now())
    KNOWN.written(name, [(m[0], m[3]) for m in written.moved], written.ended)
    KNOWN.refresh(name, written.missed)
    report.moved += len(written.moved)
    report.finished += len(written.ended)


Answer = dict[str, JobStatus] | BackendError


def ask(
    in_flight: Mapping[str, list[InFlight]],
) -> Iterator[tuple[str, list[InFlight], Answer]]:
    """Each backend's answer to ``status``, as it arrives (or the error it raised).

    With several backends the calls run side by side in threads, so a batch system whose
    command hangs (``squeue`` waiting on its controller) holds up only its own jobs; the
    answers are written here, in the calling thread, which owns the database connection.
    """
    if len(in_flight) <= 1:
        for name, jobs in in_flight.items():
            yield name, jobs, _status(name, jobs)
        return
    with ThreadPoolExecutor(max_workers=len(in_flight), thread_name_prefix="poll") as pool:
        calls = {pool.submit(_status, name, jobs): name for name, jobs in in_flight.items()}
        for call in as_completed(calls):
            name = calls[call]
            yield name, in_flight[name], call.result()


def _status(name: str, jobs: list[InFlight]) -> Answer:
    try:
        return backends.backend(name).status(jobs)
    except BackendError as exc:  # BackendUnavailable included
        return exc
    except Exception as exc:  # a backend that cannot even be built (a bad option): its
        # endpoint is skipped with the reason, the other endpoints are polled.
        log.exception("backend %s: status failed", name)
        return BackendError(f"{type(exc).__name__}: {exc}")


def apply(changes: Sequence[Change], now: datetime) -> tuple[int, int]:
    """``write`` the changes; how many jobs moved, and how many ends were recorded."""
    written = write(changes, now)
    return len(written.moved), len(written.ended)


def write(changes: Sequence[Change], now: datetime) -> Written:
    """Write the changes in bulk with the stage counters, in one transaction.

    Every write is a compare-and-set on the state the poll read (and an outcome not yet
    recorded): a job that another worker moved since (finalize, a cancel, stuck
    detection) is left alone rather than overwritten, and the stage counters move by
    what the writes really changed.
    """
    if not changes:
        return Written([], [], [])
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
            moved, ended = _write(moves, ends, now)
            break
        except OperationalError as exc:
            if not _is_deadlock(exc) or attempt == DEADLOCK_RETRIES:
                raise
            log.warning("poll: deadlock writing %d changes, again", len(changes))
    done = {m[0] for m in moved}.union(ended)
    return Written(moved, ended, [c.job_id for c in changes if c.job_id not in done])


def _write(moves: list[tuple], ends: list[tuple], now: datetime) -> tuple[list, list[int]]:
    with transaction.atomic():
        if connection.vendor == "postgresql":
            moved, ended = _write_arrays(moves, ends, now)
        else:
            moved, ended = _write_rows(moves, ends, now)
        deltas: dict[int, Counter[str]] = defaultdict(Counter)
        for _job, stage_id, old, new in moved:
            deltas[stage_id][old] -= 1
            deltas[stage_id][new] += 1
        bulk_add(
            Stage,
            {
                stage_id: {COUNTER_FOR_STATE[state]: n for state, n in delta.items()}
                for stage_id, delta in deltas.items()
            },
        )
    return moved, ended


def _is_deadlock(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == "40P01"


def _write_arrays(moves: list[tuple], ends: list[tuple], now: datetime) -> tuple[list, list[int]]:
    """PostgreSQL: one compare-and-set ``UPDATE ... FROM unnest(...)`` for the moves
    (returning what moved, for the counters) and one for the ends.

    No re-read under lock first: the ``WHERE`` is the check, evaluated again on the row's
    newest version when another transaction changed it meanwhile. The arrays are sorted
    by job id and the plan walks them with the primary key's index, so rows are locked in
    id order, as stuck detection and finalize lock theirs; were the planner ever to
    choose otherwise, PostgreSQL detects the deadlock and ``write`` tries again.
    """
    table = connection.ops.quote_name(Job._meta.db_table)
    moved: list[tuple[int, int, str, str]] = []
    ended: list[int] = []
    with connection.cursor() as cursor:
        if moves:
            cursor.execute(
                f"UPDATE {table} AS t SET state = v.new, state_since = %s, "  # noqa: S608
                "started = COALESCE(t.started, CASE WHEN v.new = %s THEN %s::timestamptz END), "
                "failure_reason = v.reason "
                "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) "
                "AS v(id, old, new, reason) "
                "WHERE t.id = v.id AND t.state = v.old AND t.outcome = '' "
                "RETURNING t.id, t.stage_id, v.old, v.new",
                [now, JobState.RUNNING, now, *_columns(moves, 4)],
            )
            moved = cursor.fetchall()
        if ends:
            cursor.execute(
                f"UPDATE {table} AS t SET outcome = v.outcome, exit_code = v.code, "  # noqa: S608
                "finished = %s, failure_reason = v.reason "
                "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::int[], %s::text[]) "
                "AS v(id, state, outcome, code, reason) "
                "WHERE t.id = v.id AND t.state = v.state AND t.outcome = '' RETURNING t.id",
                [now, *_columns(ends, 5)],
            )
            ended = [row[0] for row in cursor.fetchall()]
    return moved, ended


def _columns(rows: list[tuple], width: int) -> list[str]:
    """Rows -> one array literal per column (the arrays ``unnest`` takes)."""
    columns = zip(*rows, strict=True) if rows else [()] * width
    return [array_literal(column) for column in columns]


def _write_rows(moves: list[tuple], ends: list[tuple], now: datetime) -> tuple[list, list[int]]:
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
        moved.append((pk, stage_id, old, new))
    for pk, old, outcome_new, code, reason in ends:
        _stage, state, outcome, _started = current.get(pk, (None, None, None, None))
        if state != old or outcome:
            continue
        end_rows.append((pk, outcome_new, code, now, reason))
    bulk_set_rows(Job, ["state", "state_since", "started", "failure_reason"], move_rows)
    bulk_set_rows(Job, ["outcome", "exit_code", "finished", "failure_reason"], end_rows)
    return moved, [row[0] for row in end_rows]


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
        jobs = Job.objects.filter(stage__campaign_id=campaign_id)
        if _cancel_in_flight(jobs, f"campaign {campaign_id}"):
            Campaign.objects.filter(pk=campaign_id).update(cancel_pending=False)
            done.append(campaign_id)
    _cancel_abandoned()
    return done


def _cancel_in_flight(jobs: QuerySet[Job], what: str) -> bool:
    """Cancel at their batch systems the ``jobs`` in flight; False when one refused (the
    flag stays up and the next cycle tries again)."""
    by_backend: dict[str, list[str]] = defaultdict(list)
    for name, batch_id in (
        jobs.filter(state__in=sorted(ACTIVE_JOB_STATES))
        .exclude(batch_id="")
        .values_list("backend", "batch_id")
    ):
        by_backend[name].append(batch_id)
    took = True
    # Every endpoint is asked even when one refuses: a cluster that is down delays only
    # the cancel of its own jobs.
    for name, ids in by_backend.items():
        try:
            backends.backend(name).cancel(ids)
        except BackendError as exc:
            log.warning("%s: cancel at %s failed, retrying: %s", what, name, exc)
            took = False
    return took


def _cancel_abandoned() -> None:
    """As for a cancelled campaign, for requests force-completed with jobs still in flight
    (the flag on their campaign link; ``campaigns.services.completion``): only their own
    jobs are cancelled."""
    for link_id, campaign_id, request_id in CampaignRequest.objects.filter(
        cancel_pending=True
    ).values_list("id", "campaign_id", "request_id"):
        jobs = Job.objects.filter(stage__campaign_id=campaign_id, stage__request_id=request_id)
        if _cancel_in_flight(jobs, f"request {request_id}"):
            CampaignRequest.objects.filter(pk=link_id).update(cancel_pending=False)

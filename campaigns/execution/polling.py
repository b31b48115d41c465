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
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from ..batch import ACTIVE_STATES, BackendError, BackendUnavailable, JobRef, JobStatus
from ..choices import ACTIVE_JOB_STATES, JobState
from ..models import COUNTER_FOR_STATE, Campaign, Job, Stage
from . import backends
from .bulk import bulk_add, bulk_set_rows

log = logging.getLogger(__name__)

BULK = 500


@dataclass
class PollReport:
    """What one poll cycle saw and wrote."""

    polled: int = 0
    moved: int = 0  # in-flight state changes written
    finished: int = 0  # outcomes recorded for finalize
    unavailable: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    cancelled_campaigns: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Change:
    job_id: int
    stage_id: int
    old_state: str
    new_state: str  # == old_state when only an outcome is recorded
    status: JobStatus


def in_flight() -> dict[str, list[dict[str, Any]]]:
    """Jobs a batch system owns and whose end was not seen yet, by backend (one query)."""
    jobs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in (
        Job.objects.filter(state__in=sorted(ACTIVE_JOB_STATES), outcome="")
        .exclude(batch_id="")
        .values("id", "stage_id", "backend", "batch_id", "workdir", "state")
    ):
        jobs[row["backend"]].append(row)
    return jobs


def poll(now: datetime | None = None) -> PollReport:
    """One cycle over every backend with jobs in flight."""
    report = PollReport()
    report.cancelled_campaigns = cancel_requested()
    for name, jobs in in_flight().items():
        refs = [JobRef(j["batch_id"], j["workdir"]) for j in jobs]
        try:
            statuses = backends.backend(name).status(refs)
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
        changes = []
        for job in jobs:
            status = statuses.get(job["batch_id"])
            if status is None:
                continue
            if status.state in ACTIVE_STATES:
                if status.state != job["state"]:
                    changes.append(
                        Change(job["id"], job["stage_id"], job["state"], str(status.state), status)
                    )
            else:
                changes.append(
                    Change(job["id"], job["stage_id"], job["state"], job["state"], status)
                )
        moved, finished = apply(changes, now or timezone.now())
        report.moved += moved
        report.finished += finished
    return report


def apply(changes: list[Change], now: datetime) -> tuple[int, int]:
    """Write the changes in bulk with the stage counters, in one transaction.

    Each job is re-read under a row lock first: a job that another worker moved since it
    was read (finalize, a cancel) is left alone rather than overwritten.
    """
    if not changes:
        return 0, 0
    moves: list[tuple] = []  # (id, state, state_since, started, failure_reason)
    ends: list[tuple] = []  # (id, outcome, exit_code, finished, failure_reason)
    deltas: dict[int, Counter[str]] = defaultdict(Counter)
    ids = [c.job_id for c in changes]
    # One query on PostgreSQL; SQLite's limit on variables needs chunks.
    size = len(ids) if connection.vendor == "postgresql" else BULK
    with transaction.atomic():
        current: dict[int, tuple[str, str, Any]] = {}
        for chunk in _chunks(ids, size):
            for pk, state, outcome, started in (
                Job.objects.select_for_update()
                .filter(pk__in=chunk)
                .order_by("id")  # one lock order for every poller: no deadlock between them
                .values_list("id", "state", "outcome", "started")
            ):
                current[pk] = (state, outcome, started)
        for change in changes:
            state, outcome, started = current.get(change.job_id, (None, None, None))
            if state != change.old_state or outcome:
                continue
            reason = change.status.reason[:500]
            if change.new_state != change.old_state:
                if started is None and change.new_state == JobState.RUNNING:
                    started = now
                moves.append((change.job_id, change.new_state, now, started, reason))
                deltas[change.stage_id][change.old_state] -= 1
                deltas[change.stage_id][change.new_state] += 1
            else:
                outcome = str(change.status.state)
                ends.append((change.job_id, outcome, change.status.exit_code, now, reason))
        # Rows, not model instances: building 10,000 of those cost more than the write.
        bulk_set_rows(Job, ["state", "state_since", "started", "failure_reason"], moves)
        bulk_set_rows(Job, ["outcome", "exit_code", "finished", "failure_reason"], ends)
        bulk_add(
            Stage,
            {
                stage_id: {COUNTER_FOR_STATE[state]: n for state, n in delta.items()}
                for stage_id, delta in deltas.items()
            },
        )
    return len(moves), len(ends)


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

"""Celery tasks of execution: thin, argument-free or ids only, each calling one service.

Beat runs them on short intervals (``CELERY_BEAT_SCHEDULE`` in settings, with ``expires``
just under each interval). They are hints: the database is the source of truth and every
task can run twice, late or never without losing work; the next run picks up what a lost
or killed one left. Retries happen only on named transient errors (an unreachable batch
system, a database connection that dropped), with exponential backoff and jitter.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import OperationalError, transaction
from django.utils.dateparse import parse_datetime

from .batch import BackendUnavailable
from .execution import finalize, polling, recovery, retention, stuck, submission, usage
from .execution import heartbeat as heartbeats

log = logging.getLogger(__name__)

TRANSIENT = (BackendUnavailable, OperationalError)
COMMON: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": TRANSIENT,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 5,
    "ignore_result": True,
}


def _summary(report: Any) -> dict[str, Any]:
    data = asdict(report)
    return {k: (sorted(v) if isinstance(v, set) else v) for k, v in data.items()}


def _kick(task: Any) -> None:
    """Ask for another run soon, once the current transaction (if any) committed."""
    every = float(getattr(settings, "OPOS_SUBMIT_INTERVAL_S", 5))
    transaction.on_commit(lambda: task.apply_async(expires=max(every, 1.0)))


@shared_task(
    name="campaigns.submit_ready",
    soft_time_limit=max(getattr(settings, "OPOS_SUBMIT_TASK_TIME_LIMIT_S", 300) - 30, 10),
    time_limit=getattr(settings, "OPOS_SUBMIT_TASK_TIME_LIMIT_S", 300),
    **COMMON,
)
def submit_ready() -> dict[str, Any]:
    """Resolve submissions abandoned by a dead worker (their jobs hold slots), then submit
    what the scheduler lets run now."""
    abandoned = recovery.resolve_abandoned()
    summary = _summary(submission.submit_ready())
    summary["abandoned_resolved"] = len(abandoned.adopted) + len(abandoned.resubmitted)
    return summary


@shared_task(name="campaigns.poll", soft_time_limit=240, time_limit=300, **COMMON)
def poll(endpoint: str | None = None) -> dict[str, Any]:
    """One bulk status query per backend; then finalize what finished, and record what the
    attempts that ended used (one bulk accounting query per backend).

    With ``OPOS_POLL_PER_ENDPOINT`` and several endpoints with jobs in flight, a poll of
    them all sends one poll task per endpoint instead (``endpoint``), which any worker
    takes: the endpoints are polled side by side in separate processes."""
    if endpoint is None and getattr(settings, "OPOS_POLL_PER_ENDPOINT", False):
        first, names = polling.dispatch()
        if len(names) > 1:
            expires = max(float(getattr(settings, "OPOS_POLL_INTERVAL_S", 60)), 1.0)
            for name in names:
                poll.apply_async(args=[name], expires=expires)
            summary = _summary(first)
            summary["per_endpoint"] = names
            # Once a cycle, here: the attempts the endpoint polls end now are asked about
            # in the next cycle (usage is recorded late anyway; nothing waits on it).
            summary["usage"] = _summary(usage.collect())
            return summary
        # One endpoint or none: polled here, the operators' requests already sent.
        report = polling.poll(endpoints=set(names))
        report.cancelled_campaigns, report.controls = first.cancelled_campaigns, first.controls
    else:
        report = polling.poll(endpoints=None if endpoint is None else {endpoint})
    if report.finished:
        _kick(finalize_finished)
    summary = _summary(report)
    if endpoint is None:
        summary["usage"] = _summary(usage.collect())
    return summary


@shared_task(name="campaigns.finalize", soft_time_limit=540, time_limit=600, **COMMON)
def finalize_finished() -> dict[str, Any]:
    """Declare outputs, classify failures, release the next stage, move requests on."""
    report = finalize.finalize_outcomes()
    if report.released or report.retried:
        _kick(submit_ready)
    return _summary(report)


@shared_task(name="campaigns.recover", soft_time_limit=540, time_limit=600, **COMMON)
def recover() -> dict[str, Any]:
    """Resolve submissions left in `submitting`; recount stage counters."""
    return _summary(recovery.recover())


@shared_task(name="campaigns.purge_workdirs", soft_time_limit=540, time_limit=600, **COMMON)
def purge_workdirs() -> dict[str, Any]:
    """Empty the work folders whose outputs are verified in storage, past retention."""
    summary = _summary(retention.purge())
    summary.pop("folders", None)  # the count is enough for the result; the folders are many
    return summary


@shared_task(name="campaigns.detect_stuck", soft_time_limit=240, time_limit=300, **COMMON)
def detect_stuck() -> dict[str, Any]:
    """Flag jobs and stages that stopped moving."""
    return _summary(stuck.detect_stuck())


@shared_task(name=heartbeats.HEARTBEAT_TASK, bind=True, soft_time_limit=20, time_limit=30, **COMMON)
def heartbeat(self: Any, sent_at: str | None = None) -> dict[str, Any]:
    """Record on this worker's row that it ran beat's heartbeat sent at ``sent_at``."""
    sent = parse_datetime(sent_at) if sent_at else None
    name = self.request.hostname or ""
    return {"recorded": heartbeats.record_task(name, sent)}

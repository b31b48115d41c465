"""Celery tasks of the read side: thin, argument-free, each calling one service.

Beat runs them (``CELERY_BEAT_SCHEDULE`` in settings, with ``expires`` under each
interval). Each can run twice, late or never without harm: a missed snapshot is
a gap in a chart, thinning and the digest are idempotent.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from celery import shared_task
from django.db import OperationalError

from campaigns.services import projection

from .services import commitments, record_snapshots, send_digests, thin_snapshots
from .services.weekly import send_weekly_reports

COMMON: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": (OperationalError,),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 3,
    "ignore_result": True,
}


@shared_task(name="monitoring.record_snapshots", soft_time_limit=120, time_limit=180, **COMMON)
def record_snapshots_task() -> dict[str, Any]:
    """Record progress snapshots of running campaigns, their requests and samples."""
    return asdict(record_snapshots())


@shared_task(name="monitoring.thin_snapshots", soft_time_limit=540, time_limit=600, **COMMON)
def thin_snapshots_task() -> dict[str, Any]:
    """Thin old snapshots: hourly after 48 h, daily after 30 days."""
    return asdict(thin_snapshots())


@shared_task(name="monitoring.send_digests", soft_time_limit=1700, time_limit=1800, **COMMON)
def send_digests_task() -> dict[str, Any]:
    """Email the daily digest to users who opted in."""
    return asdict(send_digests())


@shared_task(name="monitoring.send_weekly_reports", soft_time_limit=1700, time_limit=1800, **COMMON)
def send_weekly_reports_task() -> dict[str, Any]:
    """Email each experiment's weekly status report to its liaisons and subscribers."""
    return asdict(send_weekly_reports())


@shared_task(name="monitoring.check_commitments", soft_time_limit=120, time_limit=180, **COMMON)
def check_commitments_task() -> dict[str, Any]:
    """Judge the commitments not settled; announce those newly at risk or missed."""
    report = commitments.check()
    return {"checked": report.checked, "changed": report.changed, "announced": report.announced}


@shared_task(name="monitoring.refresh_projection", soft_time_limit=50, time_limit=60, **COMMON)
def refresh_projection_task() -> dict[str, Any]:
    """Compute the scheduler's projection of the current data for the pages, unless stored."""
    done = projection.refresh()
    if done is None:
        return {"computed": False}
    return {
        "computed": True,
        "campaigns": len(done.campaigns),
        "requests": len(done.requests),
        "seconds": round(done.seconds, 3),
    }

"""Recording what each finished attempt used, from its batch system's accounting.

After the poller has seen a job end (``finished`` set), this asks each backend once, in
bulk, for the figures of the attempts still without them (:meth:`BatchBackend.usage`: sacct
on Slurm, the history ClassAds on HTCondor, the runner's ``wait4`` on local) and writes them
on the attempts in one statement per backend. Slurm's accounting lags a little behind
squeue, so an attempt whose figures are not final yet is asked about again on the next
cycle; one the batch system still has nothing for after :data:`GIVE_UP_AFTER` is marked
``none`` (the ledger then falls back to the wrapper's own wall time times the cores).

Attempts are picked through the partial index ``job_usage_pending`` and at most
:data:`BATCH` per cycle, oldest first, so a backlog drains over a few cycles without
making any one poll long.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from ..batch import BackendError, JobRef, JobUsage
from ..models import Job
from . import backends
from .bulk import bulk_set_rows

log = logging.getLogger(__name__)

BATCH = 5000
"""Attempts asked about per cycle."""
GIVE_UP_AFTER = timedelta(hours=1)
"""After this long without figures, an attempt is recorded as having none."""
LOOK_BACK = timedelta(days=2)
"""Attempts that finished longer ago than this (before accounting was set up, say) are not
asked about any more."""

FIELDS = [
    "cpu_time_s",
    "core_time_s",
    "wall_time_s",
    "max_rss_kb",
    "batch_state",
    "batch_exit_code",
    "usage_source",
    "usage_at",
]


@dataclass
class UsageReport:
    """What one collection saw and wrote."""

    asked: int = 0
    recorded: int = 0
    given_up: int = 0
    unavailable: set[str] = field(default_factory=set)


def pending(now: datetime, limit: int = BATCH) -> list[tuple[int, str, str, str, datetime]]:
    """(id, backend, batch id, workdir, finished) of attempts whose usage is still unknown."""
    return list(
        Job.objects.filter(
            usage_at__isnull=True, finished__isnull=False, finished__gte=now - LOOK_BACK
        )
        .order_by("finished")
        .values_list("id", "backend", "batch_id", "workdir", "finished")[:limit]
    )


def row(pk: int, usage: JobUsage, now: datetime) -> tuple:
    """The values of :data:`FIELDS` for one attempt, as ``bulk_set_rows`` takes them."""
    return (
        pk,
        usage.cpu_s,
        usage.core_s,
        usage.wall_s,
        usage.max_rss_kb,
        usage.state[:32],
        usage.exit_code[:32],
        usage.source,
        now,
    )


def collect(now: datetime | None = None, limit: int = BATCH) -> UsageReport:
    """Ask every backend about its finished attempts without usage; write what they say."""
    now = now or timezone.now()
    report = UsageReport()
    by_backend: dict[str, list[tuple[int, str, str, datetime]]] = defaultdict(list)
    rows: list[tuple] = []
    for pk, name, batch_id, workdir, finished in pending(now, limit):
        if not batch_id:  # ended without reaching a batch system (cancelled while planned)
            rows.append(row(pk, JobUsage(source="none"), now))
            report.given_up += 1
            continue
        by_backend[name or "local"].append((pk, batch_id, workdir, finished))
    for name, attempts in by_backend.items():
        report.asked += len(attempts)
        try:
            answer = backends.backend(name).usage([JobRef(b, w) for _, b, w, _ in attempts])
        except BackendError as exc:  # BackendUnavailable included: ask again next cycle
            log.warning("usage from %s unavailable for %d attempts: %s", name, len(attempts), exc)
            report.unavailable.add(name)
            continue
        for pk, batch_id, _workdir, finished in attempts:
            usage = answer.get(batch_id)
            if usage is not None and usage.final:
                rows.append(row(pk, usage, now))
                report.recorded += 1
            elif finished < now - GIVE_UP_AFTER:
                rows.append(row(pk, usage or JobUsage(source="none"), now))
                report.given_up += 1
    if rows:
        with transaction.atomic():
            bulk_set_rows(Job, FIELDS, rows)
    return report

"""Finalize's transfer step: a succeeded job's outputs go to its experiment's storage.

Between reading a job's manifest and the transaction that declares its outputs, finalize
copies every file to storage and compares adler32 on both ends (``execution/storage.py``),
outside any transaction, like the manifest's checks. Only a job whose every file is
verified in storage goes on to be written as ``succeeded``, with one ``Replica`` per file
in the same transaction as its catalogue rows: "succeeded" means "outputs catalogued and
safe in storage".

A failed transfer leaves the job in flight (its state unchanged, ``outcome`` still set) and
records the attempt in a ``Transfer`` row: its kind (unreachable, denied, no_space,
checksum, missing, other), its reason and when to try again (the retries' exponential
backoff). After ``OPOS_TRANSFER_MAX_ATTEMPTS`` the job fails with class ``transfer`` and is
retried as a new attempt like any failure. A crash after a copy and before the transaction
costs nothing: the next cycle finds the file in storage with the same checksum and adopts
it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import F

from ..choices import OPEN_CAMPAIGN_STATES, FailureClass, JobState
from ..models import Dataset, Transfer
from . import failures
from .storage import Area, TransferError, default_root, store

if TYPE_CHECKING:
    from .finalize import Outcome

log = logging.getLogger(__name__)


@dataclass
class TransferReport:
    copied: int = 0
    adopted: int = 0
    waiting: int = 0
    failed_attempts: int = 0


def areas(dataset_ids: set[int]) -> dict[int, tuple[Area, str]]:
    """Each output dataset's storage area and name (one query)."""
    rows = Dataset.objects.filter(pk__in=dataset_ids).values(
        "id", "name", "experiment__slug", "experiment__storage_area__id",
        "experiment__storage_area__url",
    )  # fmt: skip
    found = {}
    for row in rows:
        if row["experiment__storage_area__id"] is not None:
            area = Area(row["experiment__storage_area__url"], row["experiment__storage_area__id"])
        else:
            area = Area(default_root(row["experiment__slug"]))
        found[row["id"]] = (area, row["name"])
    return found


def deliver(
    outcomes: list[Outcome],
    stages: dict[int, dict[str, Any]],
    now: dt.datetime,
    report: TransferReport,
) -> list[Outcome]:
    """Store the outputs of the succeeded outcomes; return the outcomes to write now.

    Jobs waiting out a transfer backoff, and jobs whose transfer failed this time with
    attempts left, are left out (they stay in flight); the rest are returned, succeeded
    with ``replicas`` filled in, or failed with class ``transfer`` once attempts ran out.
    """
    moving = [o for o in outcomes if o.state == JobState.SUCCEEDED and o.files]
    if not moving:
        return outcomes
    previous = {
        t["job_id"]: t
        for t in Transfer.objects.filter(job_id__in=[o.job["id"] for o in moving]).values(
            "job_id", "attempts", "next_try"
        )
    }
    where = areas({stages[o.job["stage_id"]]["output_dataset_id"] for o in moving})
    held: set[int] = set()
    failed: list[tuple[Outcome, TransferError]] = []
    # Copies take time: past the budget the rest wait for the next cycle (not a failure),
    # so the finalize task stays well within its time limit.
    deadline = time.monotonic() + settings.OPOS_TRANSFER_BUDGET_S
    for o in moving:
        before = previous.get(o.job["id"])
        if (before and before["next_try"] and before["next_try"] > now) or (
            time.monotonic() > deadline
        ):
            held.add(o.job["id"])
            report.waiting += 1
            continue
        area, dataset = where[stages[o.job["stage_id"]]["output_dataset_id"]]
        try:
            for f in o.files:
                stored = store(Path(f["path"]), f["adler32"], area.url_for(dataset, f["name"]))
                o.replicas[f["name"]] = (stored, area.storage_id)
                if stored.adopted:
                    report.adopted += 1
                else:
                    report.copied += 1
        except TransferError as exc:
            o.replicas.clear()
            failed.append((o, exc))
    if failed:
        held |= _record_failures(failed, previous, stages, now, report)
    return [o for o in outcomes if o.job["id"] not in held]


def _record_failures(
    failed: list[tuple[Outcome, TransferError]],
    previous: dict[int, dict[str, Any]],
    stages: dict[int, dict[str, Any]],
    now: dt.datetime,
    report: TransferReport,
) -> set[int]:
    """Count a failed attempt per job (one transaction); fail the jobs out of attempts.

    Returns the jobs left in flight for another try."""
    limit = int(settings.OPOS_TRANSFER_MAX_ATTEMPTS)
    again: set[int] = set()
    with transaction.atomic():
        for o, exc in failed:
            attempts = (previous.get(o.job["id"], {}).get("attempts") or 0) + 1
            reason = f"transfer attempt {attempts}/{limit}: {exc.reason}"[:500]
            log.warning("job %s: %s", o.job["id"], reason)
            report.failed_attempts += 1
            if attempts >= limit:
                _give_up(o, exc, attempts, stages)
                continue
            again.add(o.job["id"])
            # The job may have been finished by another finalizer meanwhile: the row is
            # harmless then (it goes with the job's next write, or stays as a record).
            changed = Transfer.objects.filter(job_id=o.job["id"]).update(
                attempts=F("attempts") + 1,
                next_try=now + dt.timedelta(seconds=failures.backoff_s(attempts)),
                error_kind=exc.kind,
                reason=reason,
            )
            if not changed:
                Transfer.objects.get_or_create(
                    job_id=o.job["id"],
                    defaults={
                        "attempts": 1,
                        "next_try": now + dt.timedelta(seconds=failures.backoff_s(attempts)),
                        "error_kind": exc.kind,
                        "reason": reason,
                    },
                )
    return again


def _give_up(
    o: Outcome, exc: TransferError, attempts: int, stages: dict[int, dict[str, Any]]
) -> None:
    """The job fails with class ``transfer``; rerunning it makes its outputs afresh."""
    stage = stages[o.job["stage_id"]]
    o.state = JobState.FAILED
    o.failure_class = FailureClass.TRANSFER
    o.reason = f"outputs not in storage after {attempts} transfers ({exc.kind}): {exc.reason}"[:500]
    o.files = []
    o.verdict = failures.Verdict(
        FailureClass.TRANSFER,
        o.reason,
        o.job["attempt"] < int(getattr(settings, "OPOS_MAX_ATTEMPTS", 3))
        and stage["campaign__state"] in OPEN_CAMPAIGN_STATES,
        delay_s=failures.backoff_s(o.job["attempt"]),
    )

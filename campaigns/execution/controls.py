"""Send the pending batch controls (hold, release, priority, move) and record each answer.

Run by every poll cycle, so a control the batch system could not take (its controller was
down, a job was being modified) is tried again a minute later; after
``OPOS_CONTROL_ATTEMPTS`` refusals it is marked failed with the batch system's message,
which the campaign page and the API show. A job that started or ended before its control
was sent is answered "not needed" (skipped). Controls of one kind and value go to the
backend in one call, which answers per job.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..batch import BackendError, BackendUnavailable, ControlAnswer, ControlOutcome, Placement
from ..choices import JobState
from ..models import BatchControl, ControlAction, ControlState
from . import backends
from .bulk import bulk_set_rows

log = logging.getLogger(__name__)

BATCH = 5000
STILL_QUEUED = frozenset({JobState.QUEUED, JobState.HELD})


def max_attempts() -> int:
    return int(getattr(settings, "OPOS_CONTROL_ATTEMPTS", 5))


@dataclass
class ControlReport:
    done: int = 0
    skipped: int = 0
    failed: int = 0  # for good, after the last attempt
    retrying: int = 0  # refused or unanswered this time; tried again next cycle


def _send(name: str, action: str, value: dict, batch_ids: list[str]) -> dict[str, ControlAnswer]:
    backend = backends.backend(name)
    if action == ControlAction.HOLD:
        return backend.hold(batch_ids)
    if action == ControlAction.RELEASE:
        return backend.release(batch_ids)
    if action == ControlAction.PRIORITY:
        return backend.set_priority(batch_ids, int(value["level"]))
    placement = Placement(
        partition=value.get("partition"),
        account=value.get("account"),
        qos=value.get("qos"),
        avoid_partitions=tuple(value.get("avoid_partitions") or ()),
        requirements=value.get("requirements"),
    )
    return backend.move(batch_ids, placement)


def apply_pending(limit: int = BATCH) -> ControlReport:
    """Send up to ``limit`` pending controls, oldest first, and record the answers."""
    report = ControlReport()
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            BatchControl.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(state=ControlState.PENDING)
            .order_by("id")
            .values_list(
                "id", "action", "value", "attempts", "job__backend", "job__batch_id", "job__state"
            )[:limit]
        )
        updates: list[tuple] = []
        groups: dict[tuple[str, str, str], list[tuple[int, str, int]]] = defaultdict(list)
        for pk, action, value, attempts, backend, batch_id, job_state in rows:
            if job_state not in STILL_QUEUED or not batch_id:
                updates.append(
                    (pk, ControlState.SKIPPED.value, attempts, f"job is {job_state}", now)
                )
                report.skipped += 1
                continue
            key = (backend, action, json.dumps(value or {}, sort_keys=True))
            groups[key].append((pk, batch_id, attempts))
        for (backend, action, value), members in groups.items():
            ids = [batch_id for _pk, batch_id, _a in members]
            try:
                answers = _send(backend, action, json.loads(value), ids)
            except BackendUnavailable as exc:
                # Transient: not an attempt against the job; the next cycle asks again.
                log.warning("%s %s of %d jobs postponed: %s", backend, action, len(ids), exc)
                report.retrying += len(members)
                continue
            except (BackendError, ValueError) as exc:
                answers = {i: ControlAnswer(ControlOutcome.FAILED, str(exc)) for i in ids}
            for pk, batch_id, attempts in members:
                answer = answers.get(batch_id) or ControlAnswer(
                    ControlOutcome.FAILED, "the batch system gave no answer for this job"
                )
                detail = answer.detail[:500]
                if answer.outcome == ControlOutcome.DONE:
                    updates.append((pk, ControlState.DONE.value, attempts + 1, detail, now))
                    report.done += 1
                elif answer.outcome == ControlOutcome.SKIPPED:
                    updates.append((pk, ControlState.SKIPPED.value, attempts + 1, detail, now))
                    report.skipped += 1
                elif attempts + 1 >= max_attempts():
                    updates.append((pk, ControlState.FAILED.value, attempts + 1, detail, now))
                    report.failed += 1
                else:
                    updates.append((pk, ControlState.PENDING.value, attempts + 1, detail, None))
                    report.retrying += 1
        bulk_set_rows(BatchControl, ["state", "attempts", "detail", "answered_at"], updates)
    if report.failed:
        log.error("%d batch controls failed for good", report.failed)
    return report

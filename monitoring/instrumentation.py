"""Counters of Celery task runs for /metrics, kept through Celery's task signals.

Why signals: the tasks belong to other apps and must stay a few lines each; timing
and counting every task in one place is instrumentation, not behaviour (nothing
the tasks do depends on it). Why the database: web, worker and beat are separate
processes, and the web process serving /metrics must see what the worker counted.

Per run: ``runs``, the duration (sum and last), success or failure time, and, for
tasks that return a summary dict (``campaigns.poll``, ``campaigns.submit_ready``,
...), the sum of each whole-number field in ``TaskStat.results`` (jobs submitted,
jobs polled, ...). Eager runs (tests, CELERY_TASK_ALWAYS_EAGER) are not counted,
and an error here is logged, never raised into the task.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

log = logging.getLogger(__name__)

_started: dict[str, float] = {}
MAX_RESULT_FIELDS = 20


def _eager(task: Any) -> bool:
    request = getattr(task, "request", None)
    return bool(getattr(request, "is_eager", False))


def on_prerun(sender=None, task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id and not _eager(task):
        _started[task_id] = time.monotonic()


def _numbers(retval: Any) -> dict[str, int]:
    if not isinstance(retval, dict):
        return {}
    out = {}
    for key, value in list(retval.items())[:MAX_RESULT_FIELDS]:
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            out[str(key)[:40]] = value
        elif isinstance(value, list | tuple | set):
            out[str(key)[:40]] = len(value)
    return out


def record(name: str, duration: float | None, state: str, retval: Any = None) -> None:
    """Add one run of task ``name`` to its counters."""
    from .models import TaskStat

    now = timezone.now()
    with transaction.atomic():
        stat, _ = TaskStat.objects.select_for_update().get_or_create(name=name[:100])
        fields: dict[str, Any] = {"runs": F("runs") + 1}
        if duration is not None:
            fields["duration_sum_s"] = F("duration_sum_s") + duration
            fields["last_duration_s"] = duration
        if state == "SUCCESS":
            fields["last_success_at"] = now
            numbers = _numbers(retval)
            if numbers:
                results = dict(stat.results or {})
                for key, value in numbers.items():
                    results[key] = int(results.get(key, 0)) + value
                fields["results"] = results
        elif state == "RETRY":
            fields["retries"] = F("retries") + 1
        else:
            fields["failures"] = F("failures") + 1
            fields["last_failure_at"] = now
        TaskStat.objects.filter(pk=stat.pk).update(**fields)


def on_postrun(
    sender=None,
    task_id: str | None = None,
    task: Any = None,
    retval: Any = None,
    state: str | None = None,
    **_: Any,
) -> None:
    started = _started.pop(task_id, None) if task_id else None
    if started is None or task is None:
        return
    try:
        record(task.name, time.monotonic() - started, state or "FAILURE", retval)
    except Exception:  # instrumentation must never fail a task
        log.exception("could not record the run of %s", getattr(task, "name", "?"))


def connect() -> None:
    """Hook the counters to Celery's signals (from ``MonitoringConfig.ready``)."""
    from celery import signals

    signals.task_prerun.connect(on_prerun, weak=False, dispatch_uid="monitoring-prerun")
    signals.task_postrun.connect(on_postrun, weak=False, dispatch_uid="monitoring-postrun")

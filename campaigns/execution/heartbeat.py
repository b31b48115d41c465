"""Heartbeats of the Celery workers and beat, and what they say about who is alive.

Each worker and beat process records itself (``WorkerHeartbeat``, one row per Celery node
name) when it starts, every ``OPOS_HEARTBEAT_INTERVAL_S`` from a thread of its own while it
runs, and when it stops cleanly. A thread rather than a task or the consumer's timer: a
worker busy with a long task (or the solo pool) still shows as alive, and a worker whose
pool is full still beats. That a worker *consumes* is proven separately: beat sends the
``campaigns.heartbeat`` task every interval with its send time, and the worker that runs it
records both times on its row.

Readers: ``/healthz`` (``process_health``) and recovery (``claimant_gone``: a submission
left ``submitting`` by a process known to be gone is resolved at once).

Signal handlers run in Celery's processes only; a failure to record is logged, never
raised into Celery (a database outage must not stop the worker).
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils import timezone

from ..models import ProcessRole, Submission, WorkerHeartbeat

log = logging.getLogger(__name__)

HEARTBEAT_TASK = "campaigns.heartbeat"
ROWS_SHOWN = 50
"""``/healthz`` lists at most this many processes of each role (newest heartbeat first)."""
FORGET_AFTER = dt.timedelta(days=7)
"""Rows of processes silent this long are dropped when a process starts."""


def interval_s() -> float:
    return float(getattr(settings, "OPOS_HEARTBEAT_INTERVAL_S", 10))


def silent_limit(role: str) -> dt.timedelta:
    beat = role == ProcessRole.BEAT
    name = "OPOS_HEALTH_BEAT_SILENT_S" if beat else "OPOS_HEALTH_WORKER_SILENT_S"
    return dt.timedelta(seconds=int(getattr(settings, name, 60)))


def task_silent_limit() -> dt.timedelta:
    return dt.timedelta(seconds=int(getattr(settings, "OPOS_HEALTH_TASK_SILENT_S", 900)))


# --- writing -----------------------------------------------------------------------------------


def record_start(
    name: str, role: str, hostname: str, pid: int, now: dt.datetime | None = None
) -> WorkerHeartbeat:
    """A process started under ``name``: it takes the row over (a new pid and start time)."""
    now = now or timezone.now()
    WorkerHeartbeat.objects.filter(seen_at__lt=now - FORGET_AFTER).delete()
    row, _ = WorkerHeartbeat.objects.update_or_create(
        name=name[:200],
        defaults={
            "role": role,
            "hostname": hostname[:200],
            "pid": pid,
            "started_at": now,
            "seen_at": now,
            "stopped_at": None,
        },
    )
    return row


def record_beat(name: str, pid: int, now: dt.datetime | None = None) -> bool:
    """The process ``name`` (pid ``pid``) is alive. False if another process took the row
    over meanwhile (then this one says nothing)."""
    now = now or timezone.now()
    return bool(
        WorkerHeartbeat.objects.filter(name=name[:200], pid=pid, stopped_at__isnull=True).update(
            seen_at=now
        )
    )


def record_alive(
    name: str,
    role: str,
    hostname: str,
    pid: int,
    started_at: dt.datetime,
    now: dt.datetime | None = None,
) -> bool:
    """``record_beat``, and the row made again if there is none (the database was down when
    the process started, or the row was removed); a row another process took over is left
    to it. True when this process's heartbeat is recorded."""
    now = now or timezone.now()
    if record_beat(name, pid, now):
        return True
    _row, created = WorkerHeartbeat.objects.get_or_create(
        name=name[:200],
        defaults={
            "role": role,
            "hostname": hostname[:200],
            "pid": pid,
            "started_at": started_at,
            "seen_at": now,
        },
    )
    return created


def record_stop(name: str, pid: int, now: dt.datetime | None = None) -> None:
    now = now or timezone.now()
    WorkerHeartbeat.objects.filter(name=name[:200], pid=pid).update(seen_at=now, stopped_at=now)


def record_task(name: str, sent_at: dt.datetime | None, now: dt.datetime | None = None) -> bool:
    """Worker ``name`` ran the heartbeat task that beat sent at ``sent_at``."""
    now = now or timezone.now()
    return bool(
        WorkerHeartbeat.objects.filter(name=name[:200]).update(
            task_sent_at=sent_at, task_ran_at=now, seen_at=now
        )
    )


class Heart:
    """A daemon thread that records a process's heartbeat every interval."""

    def __init__(self, name: str, role: str, pid: int | None = None) -> None:
        self.name = name
        self.role = role
        self.pid = pid or os.getpid()
        self.hostname = socket.gethostname()
        self.started_at = timezone.now()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"heartbeat-{role}", daemon=True)

    def start(self) -> None:
        self._safely(record_start, self.name, self.role, self.hostname, self.pid, self.started_at)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self._safely(record_stop, self.name, self.pid)

    def _run(self) -> None:
        while not self.stopped.wait(interval_s()):
            self._safely(
                record_alive, self.name, self.role, self.hostname, self.pid, self.started_at
            )

    def _safely(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # a database outage must not stop the worker or beat
            log.exception("%s %s: cannot record its heartbeat", self.role, self.name)
        finally:
            # This thread's connections only: it sleeps for an interval, holding none.
            if threading.current_thread() is self.thread:
                connections.close_all()


# --- reading -----------------------------------------------------------------------------------


def _age_s(moment: dt.datetime | None, now: dt.datetime) -> float | None:
    return None if moment is None else round((now - moment).total_seconds(), 1)


def _row(hb: dict[str, Any], now: dt.datetime, limit: dt.timedelta) -> dict[str, Any]:
    if hb["stopped_at"] is not None:
        state = "stopped"
    elif hb["seen_at"] < now - limit:
        state = "silent"
    else:
        state = "alive"
    return {
        "name": hb["name"],
        "hostname": hb["hostname"],
        "pid": hb["pid"],
        "state": state,
        "started_at": hb["started_at"].isoformat(),
        "seen_at": hb["seen_at"].isoformat(),
        "seen_age_s": _age_s(hb["seen_at"], now),
        "task_sent_at": hb["task_sent_at"].isoformat() if hb["task_sent_at"] else None,
        "task_ran_at": hb["task_ran_at"].isoformat() if hb["task_ran_at"] else None,
    }


@dataclass
class RoleHealth:
    ok: bool
    detail: str
    processes: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "processes": self.processes}


def _role_health(role: str, now: dt.datetime) -> tuple[RoleHealth, list[dict[str, Any]]]:
    limit = silent_limit(role)
    raw = list(
        WorkerHeartbeat.objects.filter(role=role)
        .order_by("-seen_at")
        .values(
            "name",
            "hostname",
            "pid",
            "started_at",
            "seen_at",
            "stopped_at",
            "task_sent_at",
            "task_ran_at",
        )[:ROWS_SHOWN]
    )
    rows = [_row(hb, now, limit) for hb in raw]
    alive = [r for r in rows if r["state"] == "alive"]
    if alive:
        return RoleHealth(True, f"{len(alive)} alive", rows), raw
    if not rows:
        return RoleHealth(False, f"no {role} has ever reported a heartbeat", rows), raw
    last = rows[0]
    how = "stopped" if last["state"] == "stopped" else "silent"
    # No host names or pids here: the reason is shown to anyone who asks /healthz.
    detail = (
        f"no {role} alive: the last one {how}; its last heartbeat "
        f"{last['seen_age_s']:.0f} s ago (limit {limit.total_seconds():.0f} s)"
    )
    return RoleHealth(False, detail, rows), raw


def process_health(now: dt.datetime | None = None) -> dict[str, RoleHealth]:
    """Workers, beat, and the heartbeat task's trip from beat through a worker (two queries).

    ``tasks`` fails when workers and beat are alive but no worker ran a heartbeat task
    within ``OPOS_HEALTH_TASK_SILENT_S`` (a consumer that hangs, messages that do not
    arrive); the workers' start counts as a run, so a worker just started is not flagged.
    """
    now = now or timezone.now()
    workers, worker_rows = _role_health(ProcessRole.WORKER, now)
    beat, _ = _role_health(ProcessRole.BEAT, now)
    limit = task_silent_limit()
    since = now - silent_limit(ProcessRole.WORKER)
    live = [r for r in worker_rows if r["stopped_at"] is None and r["seen_at"] >= since]
    latest = max(
        (max(r["task_ran_at"] or r["started_at"], r["started_at"]) for r in live), default=None
    )
    if not (workers.ok and beat.ok):
        tasks = RoleHealth(True, "not checked: see workers and beat")
    elif latest is not None and latest >= now - limit:
        tasks = RoleHealth(True, f"a heartbeat task ran {_age_s(latest, now):.0f} s ago")
    else:
        tasks = RoleHealth(
            False,
            f"workers and beat are alive but no worker ran a heartbeat task for "
            f"{_age_s(latest, now):.0f} s (limit {limit.total_seconds():.0f} s): "
            "messages are not consumed",
        )
    return {"workers": workers, "beat": beat, "tasks": tasks}


# --- the claimant of a submission ---------------------------------------------------------------


def current_claimant() -> dict[str, Any]:
    """Who is claiming now: the Celery node name of the task being run (blank outside a
    worker), this host and pid namespace, this process."""
    from celery import current_task

    request = getattr(current_task, "request", None)
    name = getattr(request, "hostname", None) or ""
    return {
        "claimed_by": name[:200],
        "claimed_host": process_space(),
        "claimed_pid": os.getpid(),
    }


def process_space() -> str:
    """This host and pid namespace: pids are only comparable within one. Two containers
    may share a host name (host networking) but never a pid namespace."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{namespace}"[:200]


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def claimant_gone(
    submission: Submission,
    now: dt.datetime,
    rows: dict[str, dict[str, Any]] | None = None,
) -> str:
    """Why the process that claimed ``submission`` is known to be gone ("" if it is not).

    On the claimant's own host the process table decides: its pid no longer exists. Elsewhere
    its worker's heartbeat row does: a newer process took the name over since the claim, the
    worker stopped (a clean stop waits for its tasks), or its heartbeat is older than the
    silent limit. A submission of unknown claimant (claimed outside a worker, or by an earlier
    version) is never judged here: it waits for the grace period.
    """
    if not submission.claimed_pid or not submission.claimed_host:
        return ""
    if submission.claimed_host == process_space():
        if pid_exists(submission.claimed_pid):
            return ""
        return f"its process {submission.claimed_pid} on {submission.claimed_host} is gone"
    if not submission.claimed_by:
        return ""
    if rows is None:
        rows = worker_rows([submission.claimed_by])
    row = rows.get(submission.claimed_by)
    if row is None:
        return ""
    if row["started_at"] > submission.created:
        return f"worker {submission.claimed_by} started again since the claim"
    if row["stopped_at"] is not None:
        return f"worker {submission.claimed_by} stopped"
    if row["seen_at"] < now - silent_limit(ProcessRole.WORKER):
        return f"worker {submission.claimed_by} silent since {row['seen_at'].isoformat()}"
    return ""


def worker_rows(names: list[str]) -> dict[str, dict[str, Any]]:
    return {
        row["name"]: row
        for row in WorkerHeartbeat.objects.filter(name__in=names).values(
            "name", "started_at", "stopped_at", "seen_at"
        )
    }


# --- Celery signals --------------------------------------------------------------------------

_hearts: dict[str, Heart] = {}


def on_worker_ready(sender: Any = None, **_: Any) -> None:
    name = getattr(sender, "hostname", None) or f"celery@{socket.gethostname()}"
    heart = Heart(name, ProcessRole.WORKER)
    _hearts["worker"] = heart
    heart.start()


def on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    heart = _hearts.pop("worker", None)
    if heart is not None:
        heart.stop()


def on_beat_init(sender: Any = None, **_: Any) -> None:
    from celery.signals import before_task_publish

    heart = Heart(f"beat@{socket.gethostname()}", ProcessRole.BEAT)
    _hearts["beat"] = heart
    heart.start()
    atexit.register(heart.stop)  # beat sends no signal when it stops
    # Only beat stamps the heartbeat task with its send time (see module docstring).
    before_task_publish.connect(stamp_send_time, weak=False)


def stamp_send_time(sender: str | None = None, body: Any = None, **_: Any) -> None:
    """Beat's heartbeat task carries the moment beat sent it (keyword ``sent_at``)."""
    if sender == HEARTBEAT_TASK and isinstance(body, tuple | list) and len(body) > 1:
        kwargs = body[1]
        if isinstance(kwargs, dict):
            kwargs["sent_at"] = timezone.now().isoformat()


def connect() -> None:
    from celery.signals import beat_init, worker_ready, worker_shutdown

    worker_ready.connect(on_worker_ready, weak=False)
    worker_shutdown.connect(on_worker_shutdown, weak=False)
    beat_init.connect(on_beat_init, weak=False)

"""``/healthz``: the database, the broker and its queue depth, and the workers and beat by
their heartbeats (``campaigns.execution.heartbeat``).

503 with the reasons when the database or the broker cannot be reached, when no worker or
no beat recorded a heartbeat within ``OPOS_HEALTH_WORKER_SILENT_S`` /
``OPOS_HEALTH_BEAT_SILENT_S``, or when both are alive but no worker ran beat's heartbeat
task within ``OPOS_HEALTH_TASK_SILENT_S``. Cheap enough to poll every few seconds: three
bounded queries and one broker connection with a short timeout. Anyone may ask; the list
of processes (host names, pids) is shown only to those who may read ``/metrics``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from campaigns.execution.heartbeat import process_health
from monitoring.metrics import allowed as metrics_allowed

from .broker import queue_depth
from .celery import app as celery_app


def _check_database() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"
        return False, type(exc).__name__
    return True, connection.vendor


def _transport_for(url: str) -> str | None:
    """The transport to reach ``url``: the configured one for the embedded broker (ours, see
    opos/broker.py); otherwise the URL's own, so a URL changed at run time is honoured."""
    if url.startswith("filesystem://"):
        return getattr(settings, "CELERY_BROKER_TRANSPORT", None)
    scheme = url.split("://", 1)[0]
    return None if "+" in scheme else scheme


def _check_broker() -> dict:
    """Reachable, and how many messages wait in the default queue."""
    url = settings.CELERY_BROKER_URL
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    timeout = int(getattr(settings, "OPOS_HEALTH_BROKER_TIMEOUT_S", 3))
    try:
        # A fresh connection to the configured URL, never a pooled one that
        # could hide a broker that has gone away since.
        with celery_app.connection_for_write(
            url=url,
            transport=_transport_for(url),
            transport_options=getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None),
            connect_timeout=timeout,
        ) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
            transport = conn.transport_cls
            if url.startswith("filesystem://"):
                depth = queue_depth(conn.transport_options["data_folder_in"], queue)
            else:
                # kombu's size of a queue: for Redis, LLEN of its keys (one per priority).
                depth = conn.default_channel._size(queue)
    except Exception as exc:  # refused, timed out, bad URL: all "down"
        return {"ok": False, "detail": type(exc).__name__}
    return {"ok": True, "detail": str(transport), "queue": queue, "queue_depth": depth}


@never_cache
@require_GET
def healthz(request):
    db_ok, db_detail = _check_database()
    broker = _check_broker()
    body: dict = {
        "database": {"ok": db_ok, "detail": db_detail},
        "broker": broker,
    }
    reasons = []
    if not db_ok:
        reasons.append(f"database: {db_detail}")
    if not broker["ok"]:
        reasons.append(f"broker: {broker['detail']}")
    if db_ok:
        try:
            parts = process_health()
        except Exception as exc:  # e.g. migrations not applied yet
            reasons.append(f"heartbeats: cannot be read ({type(exc).__name__})")
            parts = {}
        # Host names and pids are for operators and the monitoring system (as /metrics).
        show_processes = metrics_allowed(request)
        for part, health in parts.items():
            body[part] = health.as_dict()
            if not show_processes:
                body[part].pop("processes")
            if not health.ok:
                reasons.append(f"{part}: {health.detail}")
    ok = not reasons
    body = {"status": "ok" if ok else "unavailable", "reasons": reasons, **body}
    return JsonResponse(body, status=200 if ok else 503)

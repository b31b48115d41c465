"""Celery tasks of the connector: a few lines each, ids in, services do the work.

Retries of pushes are not Celery retries: each outbox row carries its own
attempt count and next attempt time, which survive a lost message or a
restarted worker, and the periodic ``sync_outbound`` is the retry loop.
The one-ticket pull (from the webhook) does use Celery's retry, since it is
idempotent and the periodic pull would catch the ticket anyway.
"""

from __future__ import annotations

from celery import shared_task

from . import services
from .connector import ServiceDeskError, TransientServiceDeskError


@shared_task(name="servicedesk.pull_tickets", acks_late=True, soft_time_limit=240, time_limit=300)
def pull_tickets(full: bool = False) -> str:
    """Import tickets newly assigned to the production group (beat, every few minutes)."""
    try:
        return services.pull_tickets(full=full).summary()
    except ServiceDeskError as exc:
        # Recorded on the health page; the next beat run is the retry.
        return f"pull failed: {exc}"


@shared_task(
    name="servicedesk.pull_ticket",
    acks_late=True,
    soft_time_limit=60,
    time_limit=90,
    autoretry_for=(TransientServiceDeskError,),
    retry_backoff=30,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=6,
)
def pull_ticket(number: str = "", sys_id: str = "") -> str:
    """Import one ticket now (queued by the webhook when the desk did not answer in time)."""
    try:
        outcome = services.pull_ticket(number=number, sys_id=sys_id)
    except TransientServiceDeskError:
        raise
    except (ServiceDeskError, services.TicketImportError) as exc:
        # Recorded on the health page; retrying would fail the same way.
        return f"not imported: {exc}"
    return outcome.request_number if outcome else "not imported"


@shared_task(name="servicedesk.sync_outbound", acks_late=True, soft_time_limit=240, time_limit=300)
def sync_outbound() -> dict:
    """Queue new transitions and operator comments as pushes, then send the due ones (beat)."""
    result = services.sync_outbound()
    return {"sent": result.sent, "retrying": result.retrying, "failed": result.failed}

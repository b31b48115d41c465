"""Recording sync errors for the health page, and the import refusal."""

from __future__ import annotations

import logging

from django.utils import timezone

from ..models import SyncError
from .state import record_sync

log = logging.getLogger("servicedesk")


class TicketImportError(Exception):
    """A ticket that cannot become a request as it stands (no experiment, no liaison, ...)."""


def record_error(operation: str, message: str, ticket: str = "") -> None:
    """Keep an error for the health page (the newest ``SyncError.KEEP``) and log it."""
    # What a desk sends may hold NUL characters, which PostgreSQL cannot store.
    message, ticket = message.replace("\x00", "\\0"), ticket.replace("\x00", "\\0")
    log.warning("service desk %s error%s: %s", operation, f" ({ticket})" if ticket else "", message)
    now = timezone.now()
    error = SyncError.objects.create(
        operation=operation, ticket=ticket[:40], message=message[:4000], created=now
    )
    # Ids only grow, so everything KEEP ids behind the newest is old enough to go.
    SyncError.objects.filter(id__lte=error.id - SyncError.KEEP).delete()
    record_sync(last_error=message[:4000], last_error_at=now)

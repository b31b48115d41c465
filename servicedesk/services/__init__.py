"""Use cases of the service-desk connector.

Views, the webhook, tasks and commands call these; they write intake state
only through ``requests_app.services``.
"""

from .errors import TicketImportError, record_error
from .health import Health, health
from .pull import (
    ImportOutcome,
    PullResult,
    create_draft_from_ticket,
    import_ticket,
    notify_draft,
    pull_ticket,
    pull_tickets,
)
from .push import (
    DeliveryResult,
    collect_pushes,
    deliver_pushes,
    retry_failed_pushes,
    sync_outbound,
)
from .state import record_sync, record_webhook_call, sync_state
from .webhook import SIGNATURE_HEADER, sign_body, signature_valid

__all__ = [
    "SIGNATURE_HEADER",
    "DeliveryResult",
    "Health",
    "ImportOutcome",
    "PullResult",
    "TicketImportError",
    "collect_pushes",
    "create_draft_from_ticket",
    "deliver_pushes",
    "health",
    "import_ticket",
    "notify_draft",
    "pull_ticket",
    "pull_tickets",
    "record_error",
    "record_sync",
    "record_webhook_call",
    "retry_failed_pushes",
    "sign_body",
    "signature_valid",
    "sync_outbound",
    "sync_state",
]

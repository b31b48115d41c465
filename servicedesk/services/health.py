"""The sync's health, for operators: last successes, the outbox, recent errors."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Min, Q

from ..choices import PushState
from ..conf import ServiceDeskConfig, load_config
from ..models import Push, SyncError, SyncState, TicketLink
from .state import sync_state


@dataclass
class Health:
    """What the health page shows; a fixed number of queries whatever the outbox holds."""

    config: ServiceDeskConfig
    state: SyncState
    pending: int = 0
    failed: int = 0
    oldest_pending: object = None
    links: int = 0
    errors: list = field(default_factory=list)
    failed_pushes: list = field(default_factory=list)
    recent_links: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.config.enabled and self.failed == 0 and not self._error_is_latest

    @property
    def _error_is_latest(self) -> bool:
        error_at = self.state.last_error_at
        if error_at is None:
            return False
        successes = [t for t in (self.state.last_pull_ok, self.state.last_push_ok) if t]
        return not successes or error_at > max(successes)


def health(limit: int = 10) -> Health:
    """Gather the health page's numbers and lists."""
    config = load_config()
    state = sync_state()
    counts = Push.objects.aggregate(
        pending=Count("id", filter=Q(state=PushState.PENDING)),
        failed=Count("id", filter=Q(state=PushState.FAILED)),
        oldest=Min("created", filter=Q(state=PushState.PENDING)),
    )
    return Health(
        config=config,
        state=state,
        pending=counts["pending"],
        failed=counts["failed"],
        oldest_pending=counts["oldest"],
        links=TicketLink.objects.count(),
        errors=list(SyncError.objects.order_by("-created", "-id")[:limit]),
        failed_pushes=list(
            Push.objects.filter(state=PushState.FAILED)
            .select_related("link__request")
            .order_by("-id")[:limit]
        ),
        recent_links=list(TicketLink.objects.select_related("request").order_by("-id")[:limit]),
    )

"""The connector's own record of where it stands (``SyncState``): its cursors, and when a
pull, a push, a webhook call or an error last happened."""

from __future__ import annotations

import datetime as dt

from django.db.models import Max

from requests_app.models import Comment, Transition

from ..models import SyncState

KEY = "servicenow"


def sync_state() -> SyncState:
    """The connector's state row, made on first use.

    A new row starts its cursors at the newest transition and comment: turning the
    connector on does not replay the whole history into tickets.
    """
    state = SyncState.objects.filter(key=KEY).first()
    if state is not None:
        return state
    state, _ = SyncState.objects.get_or_create(
        key=KEY,
        defaults={
            "transition_cursor": Transition.objects.aggregate(m=Max("id"))["m"] or 0,
            "comment_cursor": Comment.objects.aggregate(m=Max("id"))["m"] or 0,
        },
    )
    return state


def record_sync(**fields: dt.datetime | str | int | None) -> None:
    """Set ``fields`` of the state row (``last_pull_ok=now``, cursors, the last error)."""
    SyncState.objects.filter(key=sync_state().key).update(**fields)


def record_webhook_call(at: dt.datetime) -> None:
    """A correctly signed webhook call arrived at ``at`` (shown on the health page)."""
    record_sync(last_webhook_at=at)

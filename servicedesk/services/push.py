"""Push: request transitions and operator comments become work notes on the linked ticket.

Intake never calls the service desk (and never imports this app). Instead a
periodic task scans the ``Transition`` and ``Comment`` rows written since a
cursor and queues one ``Push`` row per item (the outbox); another pass sends
the due rows. A service-desk outage therefore cannot block or fail a
transition: it is committed before the connector ever looks at it, and the
outbox keeps the note until the desk takes it.

Why an id cursor *and* a look-back window: ids are handed out when a row is
inserted, not when its transaction commits, so a transition can become
visible after a higher id was already scanned. Re-reading the last few
minutes catches those; the unique ``(kind, source_id)`` keeps the re-read
from queueing anything twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Exists, F, Max, OuterRef, Q
from django.utils import timezone

from experiments.choices import GlobalRoleName
from experiments.models import GlobalRole
from requests_app.choices import RequestState
from requests_app.models import Comment, Transition
from requests_app.services.clock import Step, clock_rows, clock_text, steps_of

from ..choices import PushKind, PushState, SyncOperation
from ..conf import ServiceDeskConfig, load_config
from ..connector import (
    ServiceDeskConnector,
    ServiceDeskError,
    TransientServiceDeskError,
    get_connector,
)
from ..models import Push, SyncState
from .errors import record_error
from .state import record_sync, sync_state

log = logging.getLogger("servicedesk")

LOOKBACK = dt.timedelta(minutes=10)
SCAN_BATCH = 500
DELIVERY_BATCH = 200
# Field edits are not transitions: the ticket hears about decisions, not typo fixes.
SILENT_ACTIONS = frozenset({"edit"})


@dataclass
class DeliveryResult:
    """What one delivery pass did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    stopped_on: str = ""  # the transient error that ended the pass early, if any


def _who(user) -> str:
    if user is None:
        return "OPOS Tracker"
    return user.get_full_name() or user.get_username()


def _url(request) -> str:
    return f"{settings.SITE_URL}{request.get_absolute_url()}"


def _state_label(value: str) -> str:
    try:
        return RequestState(value).label.lower()
    except ValueError:
        return value


def transition_note(record: Transition, log: list[Step] | None = None) -> str:
    """The work note for one transition; with the request's ``log`` (its transitions), the
    service-desk clock as it stood at that transition, so the ticket keeps it too."""
    request = record.request
    head = f'[OPOS Tracker] {request.number} "{request.title}"'
    if record.action == "create":
        text = f"{head}: filed as a draft by {_who(record.actor)}."
    else:
        text = (
            f"{head}: {record.action.replace('_', ' ')} by {_who(record.actor)}, "
            f"{_state_label(record.from_state)} -> {_state_label(record.to_state)}."
        )
    if record.note:
        text += f"\nNote: {record.note}"
    if log is not None and record.action != "create":
        until = [step for step in log if step.at <= record.created]
        line = clock_text(clock_rows(request, until, record.created, state=record.to_state))
        if line:
            text += f"\nService-desk clock: {line}."
    return f"{text}\n{_url(request)}"


def comment_note(comment: Comment) -> str:
    """The work note for one operator comment."""
    request = comment.request
    return (
        f"[OPOS Tracker] {request.number}: comment from {_who(comment.author)}:\n"
        f"{comment.body}\n{_url(request)}"
    )


def _advance(cursor: int, rows: list, newest_before: int) -> int:
    # A full batch means more is waiting: stop at what was read. Otherwise
    # everything up to the newest id that existed before the scan was seen.
    if len(rows) >= SCAN_BATCH:
        return max(cursor, max(r.id for r in rows))
    return max(cursor, newest_before)


def collect_pushes(now: dt.datetime | None = None, config: ServiceDeskConfig | None = None) -> int:
    """Queue a ``Push`` for every new transition, operator comment and note of the tracker
    on a linked request.

    Returns how many rows were queued. Safe to run concurrently and
    repeatedly: the unique ``(kind, source_id)`` drops duplicates.
    """
    config = config or load_config()
    if not config.enabled:
        return 0
    now = now or timezone.now()
    window = now - LOOKBACK
    state = sync_state()
    newest_transition = Transition.objects.aggregate(m=Max("id"))["m"] or 0
    newest_comment = Comment.objects.aggregate(m=Max("id"))["m"] or 0

    transitions = list(
        Transition.objects.filter(request__ticket_link__isnull=False)
        .filter(Q(id__gt=state.transition_cursor) | Q(created__gte=window))
        .exclude(action__in=SILENT_ACTIONS)
        .exclude(Exists(Push.objects.filter(kind=PushKind.TRANSITION, source_id=OuterRef("pk"))))
        .select_related("request__ticket_link", "request__experiment", "actor")
        .order_by("id")[:SCAN_BATCH]
    )
    operator = Exists(
        GlobalRole.objects.filter(
            user=OuterRef("author"), role__in=[GlobalRoleName.OPERATOR, GlobalRoleName.ADMIN]
        )
    )
    comments = list(
        Comment.objects.filter(request__ticket_link__isnull=False)
        .filter(Q(id__gt=state.comment_cursor) | Q(created__gte=window))
        .annotate(by_operator=operator)
        # Operators' comments, and the tracker's own notes (work blocked or stalled).
        .filter(Q(by_operator=True) | Q(author__is_superuser=True) | Q(author__isnull=True))
        .exclude(Exists(Push.objects.filter(kind=PushKind.COMMENT, source_id=OuterRef("pk"))))
        .select_related("request__ticket_link", "author")
        .order_by("id")[:SCAN_BATCH]
    )
    # The logs of the requests, for the clock each note carries: one query.
    logs = steps_of({t.request_id for t in transitions})
    rows = [
        Push(
            link=t.request.ticket_link,
            kind=PushKind.TRANSITION,
            source_id=t.id,
            occurred=t.created,
            work_note=transition_note(t, logs.get(t.request_id, [])),
            ticket_state=(
                config.state_map.get(t.to_state, "") if t.from_state != t.to_state else ""
            ),
            next_attempt_at=now,
        )
        for t in transitions
    ] + [
        Push(
            link=c.request.ticket_link,
            kind=PushKind.COMMENT,
            source_id=c.id,
            occurred=c.created,
            work_note=comment_note(c),
            next_attempt_at=now,
        )
        for c in comments
    ]
    if rows:
        Push.objects.bulk_create(rows, ignore_conflicts=True)
    SyncState.objects.filter(key=state.key).update(
        transition_cursor=_advance(state.transition_cursor, transitions, newest_transition),
        comment_cursor=_advance(state.comment_cursor, comments, newest_comment),
    )
    return len(rows)


def backoff(attempts: int, config: ServiceDeskConfig) -> dt.timedelta:
    """Exponential delay before attempt ``attempts + 1``, capped, with +-20% jitter.

    The jitter spreads the retries of many rows (and many workers) after an
    outage instead of hitting the desk all at once when it comes back.
    """
    delay = min(config.push_backoff_base * 2 ** max(attempts - 1, 0), config.push_backoff_max)
    return dt.timedelta(seconds=delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not security


def deliver_pushes(
    *,
    connector: ServiceDeskConnector | None = None,
    now: dt.datetime | None = None,
    limit: int = DELIVERY_BATCH,
) -> DeliveryResult:
    """Send the due pushes, oldest first, one ticket's notes in order.

    A row is claimed with a compare-and-set on ``next_attempt_at`` (the
    lease), so two workers never send it twice at once. A ticket's later
    notes wait while an earlier one is retrying, so the ticket's state ends
    as the request's last transition says. The first transient error ends
    the pass: when the desk is down, one probe per pass is enough.
    """
    config = load_config()
    own = connector is None
    connector = connector or get_connector(config)
    result = DeliveryResult()
    if connector is None:
        return result
    now = now or timezone.now()
    lease = dt.timedelta(seconds=config.timeout * 3 + 30)
    blocked: set[int] = set()
    try:
        pending = list(
            Push.objects.filter(state=PushState.PENDING)
            .select_related("link")
            .order_by("occurred", "id")[:limit]
        )
        for push in pending:
            if push.link_id in blocked:
                continue
            if push.next_attempt_at > now:
                blocked.add(push.link_id)
                continue
            claimed = Push.objects.filter(
                pk=push.pk, state=PushState.PENDING, next_attempt_at=push.next_attempt_at
            ).update(next_attempt_at=now + lease, attempts=F("attempts") + 1)
            if not claimed:  # another worker has it
                blocked.add(push.link_id)
                continue
            attempts = push.attempts + 1
            try:
                connector.post_update(push.link.sys_id, push.work_note, push.ticket_state)
            except TransientServiceDeskError as exc:
                blocked.add(push.link_id)
                if attempts >= config.push_max_attempts:
                    _fail(push, f"gave up after {attempts} attempts: {exc}")
                    result.failed += 1
                else:
                    Push.objects.filter(pk=push.pk).update(
                        next_attempt_at=now + backoff(attempts, config), last_error=str(exc)
                    )
                    result.retrying += 1
                record_error(SyncOperation.PUSH, str(exc), push.link.ticket)
                result.stopped_on = str(exc)
                break
            except ServiceDeskError as exc:
                blocked.add(push.link_id)
                _fail(push, str(exc))
                result.failed += 1
                record_error(SyncOperation.PUSH, str(exc), push.link.ticket)
                continue
            Push.objects.filter(pk=push.pk).update(
                state=PushState.SENT, sent_at=timezone.now(), last_error=""
            )
            result.sent += 1
    finally:
        if own:
            connector.close()
    if result.sent:
        record_sync(last_push_ok=timezone.now())
    return result


def _fail(push: Push, message: str) -> None:
    Push.objects.filter(pk=push.pk).update(state=PushState.FAILED, last_error=message[:4000])


def sync_outbound(*, connector: ServiceDeskConnector | None = None) -> DeliveryResult:
    """Queue what is new, then send what is due (the periodic task's work)."""
    collect_pushes()
    return deliver_pushes(connector=connector)


def retry_failed_pushes() -> int:
    """Put failed pushes back in the queue (after an operator fixed the cause)."""
    return Push.objects.filter(state=PushState.FAILED).update(
        state=PushState.PENDING, attempts=0, next_attempt_at=timezone.now()
    )

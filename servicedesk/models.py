"""What the connector remembers: ticket links, the outbox of pushes, sync state and errors."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from requests_app.models import ProductionRequest

from .choices import PushKind, PushState, SyncOperation


class TicketLink(models.Model):
    """One service-desk ticket and the production request it became.

    ``ticket`` is unique, so "never two drafts for one ticket" is the
    database's promise, not a check that two workers could both pass: the
    draft and its link are written in one transaction, and the loser of a
    race rolls back both.
    """

    ticket = models.CharField("ticket number", max_length=40, unique=True)
    sys_id = models.CharField(max_length=32, help_text="The ticket's sys_id in ServiceNow.")
    table = models.CharField(max_length=80)
    request = models.OneToOneField(
        ProductionRequest, on_delete=models.CASCADE, related_name="ticket_link"
    )
    adopted = models.BooleanField(
        default=False,
        help_text="The request was filed in OPOS first and linked when the ticket was pulled.",
    )
    ticket_updated = models.DateTimeField(
        null=True, blank=True, help_text="The ticket's sys_updated_on when last pulled."
    )
    last_seen = models.DateTimeField(default=timezone.now)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.ticket} -> {self.request.number}"


class Push(models.Model):
    """An outbox row: one work note (and maybe a ticket state) to post to a ticket.

    States and transitions::

        pending -> sent      the service desk accepted it
        pending -> pending   a transient error: ``attempts`` + 1, ``next_attempt_at``
                             pushed back exponentially (with jitter)
        pending -> failed    a permanent refusal (4xx), or too many attempts;
                             an operator can put it back to pending from the
                             health page

    A worker claims a row by moving ``next_attempt_at`` forward with a
    compare-and-set (a lease): two workers never send the same row at once,
    and a worker that dies mid-send leaves a row that becomes due again when
    the lease ends. ``(kind, source_id)`` is unique, so scanning the same
    transition or comment twice never queues a second note.
    """

    link = models.ForeignKey(TicketLink, on_delete=models.CASCADE, related_name="pushes")
    kind = models.CharField(max_length=16, choices=PushKind.choices)
    source_id = models.PositiveBigIntegerField(help_text="Id of the Transition or Comment.")
    occurred = models.DateTimeField(help_text="When the transition or comment happened.")
    work_note = models.TextField()
    ticket_state = models.CharField(
        max_length=40, blank=True, help_text="Ticket state to set with the note; empty: unchanged."
    )
    state = models.CharField(max_length=16, choices=PushState.choices, default=PushState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["occurred", "id"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "source_id"], name="push_once_per_source"),
            models.CheckConstraint(
                condition=models.Q(state__in=PushState.values), name="push_state_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=PushKind.values), name="push_kind_valid"
            ),
        ]
        indexes = [
            # The deliverer's hot query: only rows still to send, in order.
            models.Index(
                fields=["occurred", "id"],
                condition=models.Q(state="pending"),
                name="push_pending",
            ),
            models.Index(fields=["state", "created"], name="push_state_created"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.source_id} -> {self.link.ticket} ({self.state})"


class SyncState(models.Model):
    """The connector's bookkeeping: scan cursors, pull watermark, last successes and error.

    One row per connector (``key``), made and written by ``services/state.py``.
    """

    key = models.CharField(max_length=40, primary_key=True, default="servicenow")
    transition_cursor = models.PositiveBigIntegerField(default=0)
    comment_cursor = models.PositiveBigIntegerField(default=0)
    pull_watermark = models.DateTimeField(
        null=True, blank=True, help_text="Newest sys_updated_on seen by a pull (the desk's clock)."
    )
    last_pull_ok = models.DateTimeField(null=True, blank=True)
    last_push_ok = models.DateTimeField(null=True, blank=True)
    last_webhook_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "sync state"

    def __str__(self) -> str:
        return f"sync state of {self.key}"


class SyncError(models.Model):
    """A recent error of the sync, shown on the health page (old rows are pruned)."""

    KEEP = 200

    operation = models.CharField(max_length=16, choices=SyncOperation.choices)
    ticket = models.CharField(max_length=40, blank=True)
    message = models.TextField()
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.operation} {self.ticket}: {self.message[:60]}"

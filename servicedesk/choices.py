"""Choice sets of the service-desk connector."""

from django.db import models


class PushKind(models.TextChoices):
    """What a pending push reports to the ticket."""

    TRANSITION = "transition", "Request transition"
    COMMENT = "comment", "Operator comment"


class PushState(models.TextChoices):
    """Life cycle of an outbox row (see ``servicedesk.models.Push``)."""

    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class SyncOperation(models.TextChoices):
    """Which side of the sync an error came from (health page)."""

    PULL = "pull", "Pull"
    PUSH = "push", "Push"
    WEBHOOK = "webhook", "Webhook"

"""Writing the audit trail (``AuditEvent``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..models import AuditEvent, Experiment

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def record(
    action: str,
    target: str,
    actor: AbstractBaseUser | None = None,
    experiment: Experiment | None = None,
    **data: Any,
) -> AuditEvent:
    """Append one audit event; call it inside the transaction of the change itself."""
    return AuditEvent.objects.create(
        action=action,
        target=target[:200],
        actor=actor if actor is not None and actor.is_authenticated else None,
        experiment=experiment,
        data=data,
    )

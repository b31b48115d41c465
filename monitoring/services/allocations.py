"""Setting, changing and removing CPU-hour allocations (operators): validated, atomic, and
recorded in the audit trail, whether from the operator form, the API or the admin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from experiments.services.audit import record

from ..models import Allocation

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

FIELDS = ("experiment", "start", "end", "cpu_hours", "note")


def _snapshot(allocation: Allocation) -> dict[str, Any]:
    return {
        "start": allocation.start.isoformat(),
        "end": allocation.end.isoformat(),
        "cpu_hours": allocation.cpu_hours,
        "note": allocation.note,
    }


def save_allocation(
    allocation: Allocation, actor: AbstractBaseUser | None, *, created: bool
) -> Allocation:
    """Validate (``full_clean``: overlapping periods, an end before the start) and save,
    with the audit event in the same transaction. Raises ``ValidationError``."""
    allocation.full_clean()
    with transaction.atomic():
        before = None
        if not created:
            old = Allocation.objects.select_for_update().get(pk=allocation.pk)
            before = _snapshot(old)
        else:
            allocation.created_by = actor if actor is not None and actor.is_authenticated else None
        allocation.save()
        record(
            "set_allocation" if created else "change_allocation",
            f"allocation {allocation.experiment.slug} {allocation.start}..{allocation.end}",
            actor=actor,
            experiment=allocation.experiment,
            before=before,
            after=_snapshot(allocation),
        )
    return allocation


def delete_allocation(allocation: Allocation, actor: AbstractBaseUser | None) -> None:
    """Remove an allocation, recorded in the audit trail."""
    with transaction.atomic():
        record(
            "delete_allocation",
            f"allocation {allocation.experiment.slug} {allocation.start}..{allocation.end}",
            actor=actor,
            experiment=allocation.experiment,
            before=_snapshot(allocation),
        )
        allocation.delete()

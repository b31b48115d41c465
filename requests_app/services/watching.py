"""Watching a request: its watchers are emailed on every transition and comment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from experiments.services.audit import record

from ..models import ProductionRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def set_watching(request: ProductionRequest, user: AbstractBaseUser, watch: bool) -> bool:
    """Start or stop watching ``request`` (the caller checked it is visible to ``user``).
    Returns whether anything changed; a change is recorded in the audit trail."""
    with transaction.atomic():
        # The request row is locked so that two clicks at once record one change.
        ProductionRequest.objects.select_for_update().filter(pk=request.pk).first()
        watching = request.watchers.filter(pk=user.pk).exists()
        if watching == watch:
            return False
        if watch:
            request.watchers.add(user)
        else:
            request.watchers.remove(user)
        record(
            "request.watch" if watch else "request.unwatch",
            request.number,
            user,
            experiment=request.experiment,
        )
    return True

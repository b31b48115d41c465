"""Who may see what: the one place that decides per-experiment visibility.

Operators and admins see every experiment; everyone else sees the
experiments they hold a membership in, and nothing else. Every view, API
endpoint, export and count goes through ``visible_to(user)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


def global_roles(user: AbstractBaseUser | AnonymousUser) -> frozenset[str]:
    """The user's global roles, cached on the user object for the request."""
    if not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_opos_global_roles", None)
    if cached is None:
        from .experiments import GlobalRole

        cached = frozenset(GlobalRole.objects.filter(user=user).values_list("role", flat=True))
        if user.is_superuser:
            cached = cached | {"admin"}
        user._opos_global_roles = cached
    return cached


def is_operator(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Operators and admins act on every experiment's requests."""
    return bool(global_roles(user) & {"operator", "admin"})


def is_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    return "admin" in global_roles(user)


def experiment_roles(user: AbstractBaseUser | AnonymousUser) -> dict[int, str]:
    """``{experiment_id: role}`` of the user's memberships, cached per request."""
    if not user.is_authenticated:
        return {}
    cached = getattr(user, "_opos_experiment_roles", None)
    if cached is None:
        from .experiments import Membership

        cached = dict(Membership.objects.filter(user=user).values_list("experiment_id", "role"))
        user._opos_experiment_roles = cached
    return cached


def forget_roles(user: AbstractBaseUser) -> None:
    """Drop the cached roles (after a grant within the same request or test)."""
    for attr in ("_opos_global_roles", "_opos_experiment_roles"):
        if hasattr(user, attr):
            delattr(user, attr)


class VisibleQuerySet(models.QuerySet):
    """A queryset that can be narrowed to what a user may see.

    Subclasses name the path from their model to the experiment id
    (``experiment_path``), e.g. ``"experiment"`` or ``"request__experiment"``.
    """

    experiment_path = "experiment"

    def visible_to(self, user: AbstractBaseUser | AnonymousUser) -> VisibleQuerySet:
        if not user.is_authenticated:
            return self.none()
        if is_operator(user):
            return self
        ids = list(experiment_roles(user))
        key = (
            self.experiment_path
            if self.experiment_path.endswith("id")
            else (f"{self.experiment_path}_id")
        )
        return self.filter(**{f"{key}__in": ids})

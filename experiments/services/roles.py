"""Granting roles: global (operator, admin) and per experiment (liaison, physicist)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from ..choices import ALL_ROLES, ExperimentRole, GlobalRoleName
from ..models import Experiment, GlobalRole, Membership
from ..models.visibility import forget_roles
from .audit import record


class RoleError(ValueError):
    """A role grant that cannot be done; the message names what is wrong."""


@dataclass(frozen=True)
class GrantResult:
    user: object
    user_created: bool
    role_created: bool


def _valid_username(username: str | None) -> str:
    """The username as Django stores it (NFKC), checked by the user model's own validators.

    The same rules as the admin's and ``createsuperuser``'s: letters, digits and @ . + - _,
    at most 150 characters; no newline, markup or control character gets into a username.
    """
    User = get_user_model()
    # Surrounding spaces are trimmed; a newline or any other control character is refused.
    username = User.normalize_username(username or "").strip(" ")
    if not username:
        raise RoleError("username must not be empty")
    field = User._meta.get_field(User.USERNAME_FIELD)
    try:
        field.run_validators(username)
    except ValidationError as exc:
        raise RoleError(f"username {username!r}: {' '.join(exc.messages)}") from None
    if field.max_length and len(username) > field.max_length:
        raise RoleError(f"username: at most {field.max_length} characters")
    return username


def grant_role(
    username: str,
    role: str,
    experiment: str | None = None,
    password: str | None = None,
    email: str = "",
    actor=None,
) -> GrantResult:
    """Give ``username`` a role, creating the user when missing.

    Everything is checked before anything is written, and the whole grant is
    one transaction: a refused grant leaves no half-created user behind. A name or role
    that is wrong on its face is refused before the database is touched.
    """
    username = _valid_username(username)
    if role not in ALL_ROLES:
        raise RoleError(f"unknown role {role!r}: choose one of {', '.join(ALL_ROLES)}")
    if role in ExperimentRole.values and not experiment:
        raise RoleError(f"role {role!r} needs --experiment SLUG")
    if role not in ExperimentRole.values and experiment:
        raise RoleError(f"role {role!r} is global; it takes no --experiment")
    with transaction.atomic():
        return _grant(username, role, experiment, password, email, actor)


def _grant(
    username: str,
    role: str,
    experiment: str | None,
    password: str | None,
    email: str,
    actor,
) -> GrantResult:
    """The grant itself, inside the caller's transaction (its arguments already checked)."""
    target_experiment = None
    if role in ExperimentRole.values:
        target_experiment = Experiment.objects.filter(slug=experiment).first()
        if target_experiment is None:
            known = ", ".join(Experiment.objects.values_list("slug", flat=True)) or "none yet"
            raise RoleError(f"unknown experiment {experiment!r} (known: {known})")

    User = get_user_model()
    user, user_created = User.objects.get_or_create(username=username, defaults={"email": email})
    if password and not user.check_password(password):
        user.set_password(password)
    elif user_created:
        user.set_unusable_password()
    if email and user.email != email:
        user.email = email
    if role == GlobalRoleName.ADMIN:
        # Admins also run the Django admin site.
        user.is_staff = True
        user.is_superuser = True
    user.save()

    if target_experiment is not None:
        membership, role_created = Membership.objects.get_or_create(
            user=user, experiment=target_experiment, defaults={"role": role}
        )
        if not role_created and membership.role != role:
            membership.role = role
            membership.save(update_fields=["role"])
            role_created = True
    else:
        _, role_created = GlobalRole.objects.get_or_create(user=user, role=role)
    if role_created:
        record(
            "grant_role",
            f"{username} is {role}" + (f" of {experiment}" if experiment else ""),
            actor=actor,
            experiment=target_experiment,
            username=username,
            role=role,
        )
    forget_roles(user)
    return GrantResult(user=user, user_created=user_created, role_created=role_created)

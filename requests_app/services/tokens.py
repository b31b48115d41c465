"""API tokens: issued, listed and revoked here only (django-rest-knox's ``AuthToken``).

The database holds a token's SHA-512 digest and its first 15 characters (knox's lookup key),
never the token: a copied row does not sign anyone in. A token is shown once, when it is
issued; it expires after ``REST_KNOX["TOKEN_TTL"]`` (``OPOS_API_TOKEN_TTL_DAYS``) and is
revoked when its user's password changes (:func:`revoke_all`, from a signal in
``requests_app.signals``). Each user lists and revokes their own; every revocation is in the
audit trail (issuing is a sign-in, which is not).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from knox.models import AuthToken

from experiments.services import audit

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def issue(user: AbstractBaseUser, *, now: dt.datetime | None = None) -> tuple[AuthToken, str]:
    """A new token for ``user``: the row and the token itself (shown to the user once).

    The user's expired tokens go at the same time, so they do not pile up. Issuing is a
    sign-in (as a browser session is), so it is not in the audit trail; revoking is.
    """
    now = now or timezone.now()
    with transaction.atomic():
        AuthToken.objects.filter(user=user, expiry__lt=now).delete()
        instance, token = AuthToken.objects.create(user=user)
    return instance, token


def tokens_of(user: AbstractBaseUser, *, now: dt.datetime | None = None) -> QuerySet[AuthToken]:
    """The user's tokens still valid at ``now``, newest first."""
    now = now or timezone.now()
    return AuthToken.objects.filter(user=user, expiry__gte=now).order_by("-created")


def revoke(user: AbstractBaseUser, token_key: str) -> bool:
    """Revoke ``user``'s token whose key is ``token_key``; False when the user has none such
    (another user's token is never touched, whether it exists or not)."""
    with transaction.atomic():
        deleted, _ = AuthToken.objects.filter(user=user, token_key=token_key).delete()
        if deleted:
            audit.record("token.revoked", f"token {token_key}", actor=user)
    return bool(deleted)


def revoke_all(
    user: AbstractBaseUser, *, reason: str, actor: AbstractBaseUser | None = None
) -> int:
    """Revoke every token of ``user`` (password changed, account closed); how many went."""
    with transaction.atomic():
        deleted, _ = AuthToken.objects.filter(user=user).delete()
        if deleted:
            audit.record(
                "token.revoked_all",
                f"user {user.get_username()}",
                actor=actor,
                reason=reason,
                tokens=deleted,
            )
    return deleted

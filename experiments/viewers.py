"""The signed-in viewer (the user row and their roles) shared between requests in the cache.

Why: every page and API call needs the user and their global and per-experiment roles
(navigation, visibility, the page cache's scope): two to three queries per request, more
than a cache hit of the page itself costs. They change rarely (a grant, a revocation, a
password change, a sign-in's ``last_login``), so they are kept in the cache, one entry
per user, next to the *people version*: one integer (``opos:people-version``) that every
committed write to the tables they come from increments (``PEOPLE_TABLES``, watched by
``common.pagecache.watch_writes`` as the pages' data is). An entry carries the version it
was read under and is used only while that is still the current version, so a role
revoked, a membership removed or an account deactivated takes effect on the next request,
whoever wrote it (a service, the admin, a shell).

The same reasoning as the page cache's data version makes it safe: the version is read
*before* the rows, and bumped *after* the write commits, so an entry can only be stored
under a version older than the data it holds, never newer.

One round trip per request (``get_many``): the people version, the viewer's entry and the
pages' data version (kept for the page cache, which would read it next).

Only with a cache shared by every process (``OPOS_VIEWER_CACHE``, on with ``CACHE_URL``):
with the per-process LocMem cache a revocation in one process would not reach the others.
The session itself is checked as Django does: its hash of the password must match, or
Django's own ``get_user`` (fallback keys, flushing the session) decides.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.core.cache import cache
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare
from django.utils.functional import SimpleLazyObject

from common import pagecache

from .models.visibility import experiment_roles, global_roles

log = logging.getLogger(__name__)

PEOPLE_VERSION_KEY = "opos:people-version"
_ENTRY_TIMEOUT_S = 3600
_MODEL_BACKEND = f"{ModelBackend.__module__}.{ModelBackend.__qualname__}"


def enabled() -> bool:
    return bool(getattr(settings, "OPOS_VIEWER_CACHE", False))


def entry_key(user_id: Any) -> str:
    return f"opos:viewer:{user_id}"


def people_tables() -> set[str]:
    """The tables the cached viewer comes from: a write to any of them (a grant, a
    membership, an account's row, its groups and permissions) makes every entry stale."""
    from django.contrib.auth import get_user_model

    from .models.experiments import GlobalRole, Membership

    user = get_user_model()
    tables = {user._meta.db_table, GlobalRole._meta.db_table, Membership._meta.db_table}
    tables |= {f.remote_field.through._meta.db_table for f in user._meta.many_to_many}
    return tables


def _load(user_id: Any) -> Any:
    """The user row and their roles, from the database (``ModelBackend.get_user``)."""
    user = ModelBackend().get_user(user_id)
    if user is not None:
        global_roles(user)
        experiment_roles(user)
    return user


def cached_user(user_id: Any, request: HttpRequest | None = None) -> Any:
    """The active user ``user_id`` with their roles attached, or None (no such user, or
    inactive): from the cache while the people version has not moved, else from the
    database (then stored). ``request`` keeps the data version read in the same trip."""
    key = entry_key(user_id)
    try:
        found = cache.get_many([PEOPLE_VERSION_KEY, key, pagecache.VERSION_KEY])
        version = pagecache.read_version(PEOPLE_VERSION_KEY, found.get(PEOPLE_VERSION_KEY))
    except Exception:
        log.exception("viewer cache: unavailable, reading user %s", user_id)
        return _load(user_id)
    if request is not None and pagecache.enabled():
        pagecache.remember_data_version(request, found.get(pagecache.VERSION_KEY))
    entry = found.get(key)
    if entry is not None and entry[0] == version:
        return entry[1]
    user = _load(user_id)
    if user is not None:
        try:
            cache.set(key, (version, user), timeout=_ENTRY_TIMEOUT_S)
        except Exception:
            log.exception("viewer cache: could not store user %s", user_id)
    return user


def attach_roles(user: Any, request: Any = None) -> None:
    """Give ``user`` (authenticated another way: an API token) the roles of the viewer
    cache, sparing their queries; nothing when the cache is off or has no active user."""
    if not enabled() or not user.is_authenticated:
        return
    cached = cached_user(user.pk, request)
    if cached is not None:
        user._opos_global_roles = cached._opos_global_roles
        user._opos_experiment_roles = cached._opos_experiment_roles


def get_user(request: HttpRequest) -> Any:
    """``django.contrib.auth.get_user`` with the user from the viewer cache.

    The cached path is taken only for a session of the model backend whose password hash
    matches; anything else (no session, another backend, a hash to check against the
    fallback keys or to refuse) goes to Django's own function, unchanged.
    """
    session = request.session
    user_id = session.get(auth.SESSION_KEY)
    if (
        not enabled()
        or user_id is None
        or session.get(auth.BACKEND_SESSION_KEY) != _MODEL_BACKEND
        or _MODEL_BACKEND not in settings.AUTHENTICATION_BACKENDS
    ):
        return auth.get_user(request)
    user = cached_user(auth.get_user_model()._meta.pk.to_python(user_id), request)
    session_hash = session.get(auth.HASH_SESSION_KEY)
    if (
        user is None
        or not session_hash
        or not constant_time_compare(session_hash, user.get_session_auth_hash())
    ):
        return auth.get_user(request)
    return user


class CachedAuthenticationMiddleware(AuthenticationMiddleware):
    """Django's authentication middleware, with ``request.user`` from the viewer cache."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)

        def user() -> Any:
            if not hasattr(request, "_cached_user"):
                request._cached_user = get_user(request)
            return request._cached_user

        request.user = SimpleLazyObject(user)

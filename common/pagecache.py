"""A shared cache of the expensive parts of the monitoring pages and progress APIs.

Why: the data these pages show changes when the poller writes (once a minute), a
snapshot is recorded (every five minutes) or someone acts, yet every viewer used to
recompute everything: the scheduler's projection for the forecasts, the burn-up and
30-74 KB of HTML, 25-176 ms per view. As BigPanDA's monitor does, the rendered
expensive part is now computed once per *data version* and shared by every viewer
with the same scope, in Django's cache (Redis when ``CACHE_URL`` is set, so a
Celery worker's bump reaches every gunicorn worker).

Key of a fragment: (name, object ids, data version, scope, language, active time zone,
clock bucket). Each part is there for a reason:

- **data version**: one global integer (``opos:data-version``) that every write path
  visible on these pages increments after its transaction commits. A new version makes
  new keys; the old entries simply expire. It is read once per request, *before* any
  data, so a page computed from data older than the version it is stored under cannot
  happen: the bump runs after the commit, and a reader that saw the new version reads
  committed data.
- **scope**: what the fragment depends on about the viewer, decided by the view (e.g.
  "operator" vs "member"; for a list of several experiments a stable hash of the
  experiments and roles). Visibility (404/403) is checked by the view *before* the
  lookup, so a cached entry is only ever served to someone allowed to see it.
- **language and time zone**: dates and texts are rendered in them.
- **clock bucket** of ``OPOS_PAGE_CACHE_S`` seconds: forecasts ("in 3 h"), burn-ups
  ending at now and "x minutes ago" depend on the clock, not only on stored data, so an
  entry is never used beyond its bucket, and expires with the same timeout. Pages say
  "as of HH:MM:SS" (when the fragment was computed) so they are honest about their age.

Fragments are rendered without the request (``render_to_string`` with a plain context):
no context processor runs, so no CSRF token, username, role flag or message can reach a
cached fragment; the per-user shell (layout, navigation, forms with their tokens) is
rendered on every request around it.

``OPOS_PAGE_CACHE_S = 0`` (the default with the per-process LocMem cache of
``make run``) computes everything on every request, as before.

What bumps the version: every statement that writes a table the pages show, whoever
runs it. ``watch_writes`` (installed by the project, ``opos/apps.py``) wraps every
database connection: an ``INSERT``, ``UPDATE`` or ``DELETE`` on one of the watched
tables schedules one bump for when its transaction commits (at once in autocommit). So
a service, the poller's bulk ``UPDATE ... FROM unnest``, the admin or a shell cannot
forget it, and no list of write paths has to be kept by hand. The tables left out are
written often and shown on no cached page (heartbeats, task statistics). Only a
``COPY`` through the driver's own cursor bypasses Django's, and its caller (the
expansion of a plan) writes watched rows in the same transaction anyway.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode

from django.conf import settings
from django.core.cache import cache
from django.db import connections, transaction
from django.db.backends.signals import connection_created
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone, translation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

if TYPE_CHECKING:
    # Only for a type: importing DRF's views here would run its settings, whose
    # authentication class (opos.authentication) imports this module.
    from rest_framework.views import APIView

log = logging.getLogger(__name__)

VERSION_KEY = "opos:data-version"
_REQUEST_ATTR = "_opos_data_version"

T = TypeVar("T")

# The clock of the buckets and of a new version (tests pin it).
_clock: Callable[[], float] = time.time


def ttl_s() -> int:
    """Seconds a fragment may be reused (0: the page cache is off)."""
    return int(getattr(settings, "OPOS_PAGE_CACHE_S", 0) or 0)


def enabled() -> bool:
    return ttl_s() > 0


def _initial_version() -> int:
    # Should the key be lost (a Redis restart, an eviction), start from the clock in
    # milliseconds rather than 1: a reset must never hand out a version that keys
    # written before it still use.
    return int(_clock() * 1000)


def data_version(request: HttpRequest | None = None) -> int:
    """The current data version; read once per request (kept on ``request``)."""
    if request is not None:
        known = getattr(request, _REQUEST_ATTR, None)
        if known is not None:
            return known
    version = read_version(VERSION_KEY, cache.get(VERSION_KEY))
    if request is not None:
        setattr(request, _REQUEST_ATTR, version)
    return int(version)


def _bump(key: str = VERSION_KEY) -> None:
    try:
        try:
            cache.incr(key)
        except ValueError:  # absent: create it (add loses to a concurrent creator)
            if not cache.add(key, _initial_version(), timeout=None):
                cache.incr(key)
    except Exception:
        # The write itself is committed and must not fail for the cache's sake; pages
        # then show it within OPOS_PAGE_CACHE_S seconds (the clock bucket) at most.
        log.exception("page cache: could not bump %s", key)


def read_version(key: str, found: Any) -> int:
    """The version under ``key`` given what a read of it found (None: absent, created)."""
    if found is None:
        cache.add(key, _initial_version(), timeout=None)
        found = cache.get(key, 0)
    return int(found)


def remember_data_version(request: HttpRequest, found: Any) -> None:
    """Keep a data version read with other keys (one round trip) for this request."""
    if found is not None and getattr(request, _REQUEST_ATTR, None) is None:
        setattr(request, _REQUEST_ATTR, int(found))


def bump_data_version() -> None:
    """Mark the data shown on the pages as changed, once the current transaction commits.

    After the commit, never before: a reader that sees the new version must find the
    new data, and a rolled-back transaction changes nothing. Outside a transaction it
    bumps at once. Cheap (one ``INCR``). Writes to the database need not call it (see
    ``watch_writes``); it is for data the pages show that lives elsewhere.
    """
    transaction.on_commit(_bump)


# The table a statement writes: Django's and our raw SQL name it right after the verb
# (``UPDATE "campaigns_job" AS t ...``). ``SELECT ... FOR UPDATE`` yields "SKIP", "OF" or
# nothing, which is no table. Only the statement's head is searched: a bulk INSERT's
# values can run to megabytes.
_WRITE = re.compile(r'\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?', re.IGNORECASE)
_HEAD = 2000


class _Bump:
    """One bump of ``key``, however many of a transaction's writes scheduled it: the first
    of its callbacks to run after the commit bumps, the rest find it done.

    Deduplicated when the callbacks run rather than when they are scheduled, because a
    transaction cannot tell whether a callback scheduled earlier will run (a rolled-back
    savepoint drops its own; the test suite runs callbacks of a transaction that never
    commits)."""

    __slots__ = ("done", "key")

    def __init__(self, key: str = VERSION_KEY) -> None:
        self.done = False
        self.key = key

    def __call__(self) -> None:
        if not self.done:
            self.done = True
            _bump(self.key)


class WriteWatch:
    """A database execute wrapper: a statement that writes one of the watched tables bumps
    each version key watching that table after its transaction commits, once per commit."""

    def __init__(self, keys_by_table: Mapping[str, Iterable[str]]) -> None:
        self.keys_by_table = {table: tuple(keys) for table, keys in keys_by_table.items()}

    def written_keys(self, sql: str) -> tuple[str, ...]:
        found = _WRITE.search(sql, 0, _HEAD)
        return self.keys_by_table.get(found.group(1), ()) if found is not None else ()

    def writes_watched(self, sql: str) -> bool:
        return bool(self.written_keys(sql))

    def __call__(self, execute: Callable, sql: str, params: Any, many: bool, context: dict):
        result = execute(sql, params, many, context)
        if isinstance(sql, str):
            for key in self.written_keys(sql):
                connection = context["connection"]
                bumps = connection.__dict__.setdefault("_opos_bumps", {})
                bump = bumps.get(key)
                if bump is None or bump.done:
                    bump = bumps[key] = _Bump(key)
                transaction.on_commit(bump, using=connection.alias)
        return result


# Version key -> the tables whose writes bump it (``watch_writes``).
_WATCHED: dict[str, frozenset[str]] = {}


def watch_writes(tables: Iterable[str], key: str = VERSION_KEY) -> WriteWatch:
    """Bump the version under ``key`` (the data version unless told) on every committed
    write to ``tables``, on every connection (those open now and those opened later).
    Idempotent: a second call for the same key replaces the tables it watches; other
    keys' tables stay watched, by the same single wrapper."""
    _WATCHED[key] = frozenset(tables)
    keys_by_table: dict[str, list[str]] = {}
    for watched_key, watched in _WATCHED.items():
        for table in watched:
            keys_by_table.setdefault(table, []).append(watched_key)
    global _WATCH
    _WATCH = WriteWatch(keys_by_table)
    connection_created.connect(_install, weak=False, dispatch_uid="opos-page-cache-watch")
    for connection in connections.all(initialized_only=True):
        _install(connection=connection)
    return _WATCH


_WATCH: WriteWatch | None = None


def _install(sender: Any = None, connection: Any = None, **kwargs: Any) -> None:
    # The current watch, read when a connection opens (a signal receiver registered once).
    connection.execute_wrappers[:] = [
        w for w in connection.execute_wrappers if not isinstance(w, WriteWatch)
    ] + ([_WATCH] if _WATCH is not None else [])


def scope_of(*parts: Any) -> str:
    """A short stable token for what a fragment depends on about the viewer."""
    text = repr(parts)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def members_scope(operator: bool, roles: dict[int, str]) -> str:
    """The scope of a list over several experiments: operator, or the sorted
    (experiment id, role) pairs of the viewer's memberships."""
    if operator:
        return "operator"
    return "m" + scope_of(sorted(roles.items()))


def key_for(name: str, ids: Iterable[Any], scope: str, request: HttpRequest | None = None) -> str:
    ttl = ttl_s()
    bucket = int(_clock() // ttl) if ttl else 0
    parts = [
        "opos:page",
        name,
        ",".join(str(i) for i in ids),
        str(data_version(request)),
        scope,
        translation.get_language() or "",
        timezone.get_current_timezone_name(),
        str(bucket),
    ]
    return ":".join(parts)


def fragment(
    name: str,
    ids: Iterable[Any],
    scope: str,
    build: Callable[[], T],
    request: HttpRequest | None = None,
) -> T:
    """``build()``'s value, shared through the cache under ``name``, ``ids``, ``scope``,
    the data version and the clock bucket; ``build()`` every time when the cache is off.

    ``build`` must return a picklable value that depends on nothing about the viewer but
    ``scope``; the caller has already checked that the viewer may see ``ids``.
    """
    ttl = ttl_s()
    if ttl <= 0:
        return build()
    try:
        key = key_for(name, ids, scope, request)
        hit = cache.get(key)
    except Exception:
        log.exception("page cache: unavailable, computing %s", name)
        return build()
    if hit is not None:
        return hit
    value = build()
    try:
        cache.set(key, value, timeout=ttl)
    except Exception:
        log.exception("page cache: could not store %s", name)
    return value


def as_of() -> str:
    """When a fragment is computed, in the active time zone (shown on the page)."""
    return timezone.localtime().strftime("%H:%M:%S")


def normalized_query(request: HttpRequest) -> str:
    """The query string with its parameters in name order (the values of one name keep
    their order): ``?b=2&a=1`` and ``?a=1&b=2`` are one entry, and every parameter, known
    or not, is part of the key."""
    pairs = parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True)
    return urlencode(sorted(pairs, key=lambda pair: pair[0]))


def api_answer(
    view: APIView,
    request: Request,
    name: str,
    ids: Iterable[Any],
    scope: str,
    build: Callable[[], Any],
) -> HttpResponseBase:
    """A DRF view's JSON answer from the page cache: the rendered bytes, shared under
    ``name``, ``ids``, ``scope``, the normalized query string, the host (pagination
    links are absolute) and the negotiated media type (``; indent=4`` changes the
    bytes). ``build()`` gives the data; errors it raises (400, 404) are never cached.

    Only JSON is cached: the browsable API is an HTML page with the viewer's name and
    CSRF token, so it is built every time, as is everything while the cache is off.
    """
    renderer = request.accepted_renderer
    if not enabled() or not isinstance(renderer, JSONRenderer):
        return Response(build())
    media_type = request.accepted_media_type
    query = scope_of(request.get_host(), request.scheme, normalized_query(request), media_type)

    def render() -> bytes:
        return renderer.render(build(), media_type, view.get_renderer_context())

    body = fragment(name, [*ids, query], scope, render, request)
    content_type = renderer.media_type
    if renderer.charset:
        content_type = f"{content_type}; charset={renderer.charset}"
    return HttpResponse(body, content_type=content_type)

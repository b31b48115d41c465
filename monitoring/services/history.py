"""A campaign's or request's snapshot history, read once per new snapshot.

The dashboard, the request page and the progress API all show the whole series
(hundreds of rows: every 5 minutes over two days, then hourly). It changes only
when the recorder adds a snapshot or the thinning deletes old ones, so it is
kept in Django's cache under a key made of what changes it: the series' latest
snapshot id and its number of rows (one aggregate on the series index). A new
snapshot or a thinning gives a new key, so a cached history is never stale; the
timeout only bounds the memory of keys no one asks for any more.

The series carries no per-user data (visibility is checked on the campaign or
request before its history is asked for), so one entry serves every user who
may see it. Along with the points it keeps the API's rendering of them (ISO
8601 strings in the current time zone, as DRF's ``DateTimeField`` writes them),
which is most of the progress API's work.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import Count, Max
from django.utils import timezone

from ..choices import SnapshotLevel
from ..models import ProgressSnapshot
from .forecast import Point

CACHE_TIMEOUT_S = 24 * 3600
COLUMN = {
    SnapshotLevel.CAMPAIGN: "campaign_id",
    SnapshotLevel.REQUEST: "request_id",
    SnapshotLevel.SAMPLE: "sample_id",
}


@dataclass
class History:
    """Points oldest first, and the same points as the progress API shows them."""

    points: list[Point]
    rows: list[tuple[str, int, int]]  # (taken_at as ISO 8601, events_done, succeeded)

    def api(self, since: dt.datetime | None = None) -> list[dict]:
        """The ``snapshots`` list of the progress API: taken at or after ``since``."""
        start = 0 if since is None else bisect.bisect_left([p.at for p in self.points], since)
        return [
            {"taken_at": at, "events_done": events, "succeeded": ok}
            for at, events, ok in self.rows[start:]
        ]


def iso(moment: dt.datetime, tz: dt.tzinfo) -> str:
    """``moment`` as DRF's ``DateTimeField`` renders it (ISO 8601, ``Z`` for UTC)."""
    text = moment.astimezone(tz).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def cache_key(level: str, owner_id: int) -> str:
    """What the series is now: one aggregate query on the series index."""
    stamp = ProgressSnapshot.objects.filter(level=level, **{COLUMN[level]: owner_id}).aggregate(
        last=Max("id"), n=Count("id")
    )
    tz = timezone.get_current_timezone_name()
    return f"opos:history:{level}:{owner_id}:{stamp['last']}:{stamp['n']}:{tz}"


def load(level: str, owner_id: int) -> History:
    """The series from the database: one query."""
    tz = timezone.get_current_timezone()
    rows = (
        ProgressSnapshot.objects.filter(level=level, **{COLUMN[level]: owner_id})
        .order_by("taken_at", "id")
        .values_list("taken_at", "events_done", "succeeded")
    )
    points = [Point(at, events, ok) for at, events, ok in rows]
    return History(points, [(iso(p.at, tz), p.events, p.succeeded) for p in points])


def history(level: str, owner_id: int) -> History:
    """The series of one campaign or request, from the cache when it has not changed."""
    key = cache_key(level, owner_id)
    found = cache.get(key)
    if found is None:
        found = load(level, owner_id)
        cache.set(key, found, CACHE_TIMEOUT_S)
    return found

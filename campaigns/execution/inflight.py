"""The poller's view of the jobs in flight, kept between polls.

Reading every job in flight on every poll makes a poll cost what the production's size
is, not what changed: with 100,000 jobs in flight the read alone took longer than
writing 10,000 changes (bench/poll.py). So each worker process keeps the rows it read,
and a poll reads again only the jobs in flight whose state changed lately
(``state_since`` within ``OPOS_POLL_RECENT_S``, on the partial index
``job_in_flight_since``): the poll's database work follows the changes.

Correctness never rests on the view being right, because every write of the poller is a
compare-and-set on the state the view holds (``polling.apply``). What can be stale, and
why it does no harm:

- A job that left flight by another path (finalize, stuck detection, a cancel) stays in
  the view. If the batch system reports it unchanged, nothing is written; if it reports
  a change, the compare-and-set fails, and the job is read again by id (``refresh``),
  which drops it.
- A job that entered flight (a submission recorded) or changed state by another path:
  every such writer sets ``state_since``, so the next read of recent changes brings it,
  provided its transaction commits within ``OPOS_POLL_RECENT_S`` of that timestamp (the
  submit task's hard time limit is shorter) and the clocks of the hosts agree to within
  that margin.
- Anything else (an edit by hand in the database): a full read every
  ``OPOS_POLL_FULL_READ_S`` replaces the view, as does a new worker process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from itertools import compress
from operator import itemgetter
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection
from django.utils import timezone

from ..choices import ACTIVE_JOB_STATES
from ..models import Job


class InFlight(NamedTuple):
    """A job in flight as the poller reads it: a row, not a model instance. It has the
    ``batch_id`` and ``workdir`` of a ``JobRef``, so it goes to ``status()`` as is."""

    id: int
    stage_id: int
    batch_id: str
    workdir: str
    state: str
    backend: str


def read(since: datetime | None = None, ids: Iterable[int] | None = None) -> list[InFlight]:
    """Jobs a batch system owns and whose end was not recorded yet (one query): all of
    them, or those whose state changed at ``since`` or later, or those of ``ids``.

    Rows straight from the cursor: 100,000 of them through the ORM's row machinery, and
    a ``JobRef`` made for each, took as long as the rest of the poll (bench/poll.py).
    """
    query = Job.objects.filter(state__in=sorted(ACTIVE_JOB_STATES), outcome="").exclude(batch_id="")
    if since is not None:
        query = query.filter(state_since__gte=since)
    if ids is not None:
        query = query.filter(pk__in=list(ids))
    sql, params = query.values_list(*InFlight._fields).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(map(InFlight._make, cursor.fetchall()))


class BackendView:
    """One backend's jobs in flight, by job id, by batch id, and batch ids by state.

    The last two let the poller compare a batch system's answer with the view as set
    differences (``polling.compare_view``); every change to the view goes through the
    methods here, which keep the three in step.
    """

    __slots__ = ("by_batch", "by_id", "in_state")

    def __init__(self, rows: Sequence[InFlight] = ()) -> None:
        # Built with C-level helpers: a full read brings every job in flight (100,000).
        self.by_id: dict[int, InFlight] = dict(zip(map(itemgetter(0), rows), rows, strict=True))
        batch_ids = list(map(itemgetter(2), rows))
        self.by_batch: dict[str, InFlight] = dict(zip(batch_ids, rows, strict=True))
        states = list(map(itemgetter(4), rows))
        self.in_state: dict[str, set[str]] = {
            state: set(compress(batch_ids, map(state.__eq__, states))) for state in set(states)
        }
        if len(self.by_batch) != len(self.by_id):  # two jobs with one batch id: keep all
            self.by_id, self.by_batch, self.in_state = {}, {}, {}
            for row in rows:
                self.add(row)

    def __len__(self) -> int:
        return len(self.by_id)

    def add(self, row: InFlight) -> None:
        """Add or replace a row (a job read again)."""
        self.drop(row.id)
        self.by_id[row.id] = row
        self.by_batch[row.batch_id] = row
        ids = self.in_state.get(row.state)
        if ids is None:
            ids = self.in_state[row.state] = set()
        ids.add(row.batch_id)

    def drop(self, job_id: int) -> None:
        row = self.by_id.pop(job_id, None)
        if row is None:
            return
        if self.by_batch.get(row.batch_id) is row:
            del self.by_batch[row.batch_id]
        self.in_state[row.state].discard(row.batch_id)

    def move(self, job_id: int, state: str) -> None:
        row = self.by_id.get(job_id)
        if row is not None:
            self.add(row._replace(state=state))


class KnownInFlight:
    """The jobs in flight as the last polls of this process left them, by backend."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Drop the view: the next poll reads every job in flight."""
        self.views: dict[str, BackendView] = {}
        self.read_at: datetime | None = None
        self.full_read_at = -math.inf
        self.database: Any = None
        self.full_reads = 0  # for tests and benchmarks: how often the view was rebuilt

    @property
    def jobs(self) -> dict[str, dict[int, InFlight]]:
        """The rows by backend and job id (what tests look at)."""
        return {name: view.by_id for name, view in self.views.items()}

    def current(self) -> dict[str, list[InFlight]]:
        """The jobs in flight by backend: the view brought up to date."""
        started = timezone.now()
        database = (connection.alias, connection.settings_dict.get("NAME"))
        full_every = getattr(settings, "OPOS_POLL_FULL_READ_S", 600)
        if (
            self.read_at is None
            or database != self.database
            or time.monotonic() - self.full_read_at >= full_every
        ):
            self.views = {name: BackendView(rows) for name, rows in _by_backend(read()).items()}
            self.full_read_at = time.monotonic()
            self.database = database
            self.full_reads += 1
        else:
            recent = timedelta(seconds=getattr(settings, "OPOS_POLL_RECENT_S", 360))
            self._add(read(since=self.read_at - recent))
        self.read_at = started
        return {name: list(view.by_id.values()) for name, view in self.views.items() if view}

    def view(self, backend: str) -> BackendView:
        return self.views.get(backend) or BackendView()

    def written(self, backend: str, moved: Sequence[tuple[int, str]], left: Sequence[int]) -> None:
        """The poll wrote these jobs of ``backend``: ``moved`` (job id, new state) stay in
        flight, ``left`` (their end recorded) are finalize's now."""
        # Loops over what was written, never over the view: a poll's cost follows the
        # changes.
        view = self.views.get(backend)
        if view is None:
            return
        for job_id in left:
            view.drop(job_id)
        for job_id, state in moved:
            view.move(job_id, state)

    def refresh(self, backend: str, ids: Sequence[int]) -> None:
        """Read these jobs again (a write found them in another state than the view's)."""
        if not ids:
            return
        view = self.views.get(backend)
        if view is not None:
            for job_id in ids:
                view.drop(job_id)
        self._add(read(ids=ids))

    def _add(self, rows: list[InFlight]) -> None:
        for row in rows:
            view = self.views.get(row.backend)
            if view is None:
                view = self.views[row.backend] = BackendView()
            view.add(row)


def _by_backend(rows: list[InFlight]) -> dict[str, list[InFlight]]:
    backends = set(map(itemgetter(5), rows))
    if len(backends) == 1:  # the usual case: no loop over 100,000 rows
        return {backends.pop(): rows}
    grouped: dict[str, list[InFlight]] = {}
    for row in rows:
        grouped.setdefault(row.backend, []).append(row)
    return grouped


KNOWN = KnownInFlight()
"""This process's view (a Celery worker process polls again and again)."""

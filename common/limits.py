"""The bounds every input is checked against, with their settings and defaults.

One place for the limits that intake (requests, samples), execution
(campaigns, planning, the catalogue), the service-desk pull and the API's
body parser all apply, so each refuses the same values with the same words.
Read through these functions (not at import time) so tests can override the
settings with pytest-django's ``settings`` fixture.

``OPOS_DEADLINE_HORIZON_DAYS``
    How far ahead a request's or a campaign's deadline may be (default 5 years).
    A deadline beyond it is a typo (``9999-12-31``) that date arithmetic
    (forecasts, slack) cannot even represent.
``OPOS_MAX_EVENTS_PER_SAMPLE``
    Events one sample line may ask for.
``OPOS_MAX_EVENTS_PER_JOB``
    Events one job may process (at most what the job's integer column holds).
``OPOS_MAX_JOBS_PER_SAMPLE``
    Jobs one sample may make over all its stages.
``OPOS_MAX_JOBS_PER_REQUEST``
    Jobs all the samples of one request may make together.
``OPOS_JSON_MAX_DEPTH``
    How deeply an API body's arrays and objects may nest.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Protocol

from django.conf import settings
from django.db.models import Case, F, Value, When
from django.utils import timezone

# Column ranges (PostgreSQL ``integer`` and ``bigint``; SQLite stores 64-bit integers).
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

DEFAULT_DEADLINE_HORIZON_DAYS = 5 * 365


def deadline_horizon_days() -> int:
    return int(getattr(settings, "OPOS_DEADLINE_HORIZON_DAYS", DEFAULT_DEADLINE_HORIZON_DAYS))


def max_events_per_sample() -> int:
    return int(getattr(settings, "OPOS_MAX_EVENTS_PER_SAMPLE", 10**12))


def max_events_per_job() -> int:
    # Never above the column: Sample.events_per_job and Stage.events_per_job are integers.
    return min(int(getattr(settings, "OPOS_MAX_EVENTS_PER_JOB", 10**9)), INT32_MAX)


def max_jobs_per_sample() -> int:
    return int(getattr(settings, "OPOS_MAX_JOBS_PER_SAMPLE", 100_000))


def max_jobs_per_request() -> int:
    return int(getattr(settings, "OPOS_MAX_JOBS_PER_REQUEST", 1_000_000))


def json_max_depth() -> int:
    return int(getattr(settings, "OPOS_JSON_MAX_DEPTH", 32))


def latest_deadline(today: dt.date | None = None) -> dt.date:
    """The last day a deadline may fall on."""
    today = today or timezone.localdate()
    return today + dt.timedelta(days=deadline_horizon_days())


def deadline_problem(
    deadline: dt.date, *, today: dt.date | None = None, allow_past: bool = False
) -> str | None:
    """Why ``deadline`` is out of bounds (a message naming the limit), or ``None``.

    ``allow_past`` is for a closed campaign, whose deadline is history: an
    operator repairing it may set the day it really had.
    """
    today = today or timezone.localdate()
    if not allow_past and deadline < today:
        return f"{deadline} is in the past"
    latest = latest_deadline(today)
    if deadline > latest:
        return (
            f"{deadline} is too far ahead: at most {deadline_horizon_days()} days from today "
            f"({latest}, OPOS_DEADLINE_HORIZON_DAYS)"
        )
    return None


class SplitStage(Protocol):
    """What job counting reads of a stage (a ``StageTemplate``)."""

    id: int
    split: str
    files_per_job: int | None
    input_stage_id: int | None


def stage_job_counts(
    events: int,
    events_per_job: int,
    stages: Iterable[SplitStage],
    input_files: int | None = None,
) -> dict[int, int]:
    """Jobs each stage makes, by arithmetic only (nothing is built).

    A stage split by events makes ``ceil(events / events_per_job)`` jobs; one
    split by files makes ``ceil(inputs / files_per_job)``, its inputs being
    the jobs of the stage it reads (one output file each) or, for the first
    stage, the files of the input dataset (``input_files``; when unknown, one
    file per job's worth of events, close enough to bound a request).
    """
    by_id = {st.id: st for st in stages}
    base = math.ceil(events / events_per_job) if events_per_job > 0 else 0
    jobs: dict[int, int] = {}

    def count(stage_id: int, seen: frozenset[int]) -> int:
        if stage_id in jobs:
            return jobs[stage_id]
        st = by_id[stage_id]
        if st.split != "files" or not st.files_per_job:
            n = base
        elif st.input_stage_id in by_id and st.input_stage_id not in seen:
            n = math.ceil(count(st.input_stage_id, seen | {stage_id}) / st.files_per_job)
        else:
            n = math.ceil((base if input_files is None else input_files) / st.files_per_job)
        jobs[stage_id] = n
        return n

    for stage_id in by_id:
        count(stage_id, frozenset({stage_id}))
    return jobs


def saturating_add(field: str, n: int) -> Case:
    """``field + n`` for an ``UPDATE``, stopping at the bigint's maximum instead of failing.

    A running total (a dataset's bytes) that would pass 2**63 - 1 makes PostgreSQL
    refuse the whole statement, and with it the transaction that records the jobs.
    """
    n = max(0, min(n, INT64_MAX))
    return Case(
        When(**{f"{field}__gt": INT64_MAX - n}, then=Value(INT64_MAX)),
        default=F(field) + n,
    )

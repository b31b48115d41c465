"""The next attempt of a job: one builder for every path that tries a job again.

Finalize's automatic retries, the operator's recovery and the stuck detector's
cancel-and-retry all make the same thing: a new row for the same work (stage, index,
events, inputs) with the next attempt number, naming its parent. They differ only in the
state it starts in, when it may run, and resources or parameters given for this attempt.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from ..choices import JobState
from ..models import Job

# A job's work: what every attempt of it is given (the resources an attempt may change).
# Submission, finalize and recovery read these fields of a job with their own.
WORK_FIELDS = (
    "events_first",
    "events",
    "input_first",
    "input_count",
    "input_files",
    "memory_mb",
    "walltime_s",
    "parameters",
)
# What a new attempt copies of its parent (as values, or read off a Job).
COPIED = ("stage_id", "index", *WORK_FIELDS)


def next_attempt(
    parent: Job | Mapping[str, Any],
    attempt: int,
    now: dt.datetime,
    *,
    state: str = JobState.READY,
    not_before: dt.datetime | None = None,
    memory_mb: int | None = None,
    walltime_s: int | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> Job:
    """Attempt number ``attempt`` of ``parent``'s work, in ``state`` since ``now``.

    ``memory_mb`` and ``walltime_s`` replace the parent's when given (a retry after running
    out of memory, an operator's override); ``parameters`` are laid over the parent's.
    """
    values = (
        {name: parent.get(name) for name in (*COPIED, "id")}
        if isinstance(parent, Mapping)
        else {name: getattr(parent, name) for name in (*COPIED, "id")}
    )
    return Job(
        stage_id=values["stage_id"],
        index=values["index"],
        attempt=attempt,
        parent_id=values["id"],
        state=state,
        state_since=now,
        not_before=not_before,
        events_first=values["events_first"],
        events=values["events"],
        input_first=values["input_first"],
        input_count=values["input_count"],
        input_files=values["input_files"],
        memory_mb=memory_mb or values["memory_mb"],
        walltime_s=walltime_s or values["walltime_s"],
        parameters={**(values["parameters"] or {}), **(parameters or {})},
    )

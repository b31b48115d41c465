"""Work that will not finish without an operator: what "blocked" means, in one place.

A stage is blocked when work is left (not every job succeeded) and none of it is open
(nothing planned, ready or at the batch system): every remaining job failed for good
after its retries. Its campaign and request are then blocked too, and so is a campaign
whose scheduling or submission raised (``Campaign.fault``). Every page, export and API
that shows a status says "blocked" with the reason built here, never "on track" with an
ETA sliding forward.
"""

from __future__ import annotations

from collections.abc import Iterable


def gave_up(jobs_total: int, succeeded: int, open_jobs: int) -> int:
    """Jobs of a stage that failed for good: not succeeded, and no attempt left open."""
    return max(jobs_total - max(succeeded, 0) - max(open_jobs, 0), 0)


def is_blocked(jobs_total: int, succeeded: int, open_jobs: int) -> bool:
    return open_jobs <= 0 and gave_up(jobs_total, succeeded, open_jobs) > 0


def gave_up_reason(stages: Iterable[tuple[str, int]]) -> str:
    """``"10 jobs of simulation gave up: recover"`` for ``[(stage name, jobs), ...]``."""
    parts = [f"{n} job{'s' if n != 1 else ''} of {name}" for name, n in stages if n > 0]
    if not parts:
        return ""
    return f"{', '.join(parts)} gave up: recover"


def blocked_reason(fault: str, stages: Iterable[tuple[str, int]]) -> str:
    """Why some work is blocked ("" when it is not): the recorded fault, then gave-ups."""
    return "; ".join(r for r in (fault, gave_up_reason(stages)) if r)

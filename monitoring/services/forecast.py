"""Forecasts from measured throughput: an ETA with a band, and the status it gives.

Pure functions over plain data (points of a snapshot history), so they are
tested on constructed histories; ``dashboards`` feeds them from the database.

* Throughput is measured over recent windows (the last 6 h and 24 h by default):
  events done now minus events done at the window's start (the latest snapshot
  at or before it; for younger work, the earliest point, i.e. the launch), over
  the time between. A window counts once it spans ``OPOS_FORECAST_MIN_SPAN_S``.
* ETA = now + remaining events / throughput. The central ETA uses the shortest
  window (the current pace); the band runs from the fastest to the slowest
  window's pace, widened by at least ``OPOS_FORECAST_MARGIN`` either way so a
  steady pace still shows its uncertainty.
* Before any event is done, no throughput exists: the scheduler's projection
  (``campaigns.services.feasibility``) is used and labelled as an estimate.
* Status: on track when even the slow end (``eta_high``) meets the deadline, at
  risk when only the fast end (``eta_low``) does, late when neither; ``done``
  and ``on_hold`` take precedence.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from campaigns.choices import Feasibility

from .. import conf
from ..choices import STATUS_BADGE, ForecastBasis, ProgressStatus

HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Point:
    """Events done at a moment (one snapshot, or the launch with nothing done)."""

    at: dt.datetime
    events: int
    succeeded: int = 0  # jobs succeeded (every stage), for jobs-per-hour throughput


@dataclass
class Forecast:
    """An ETA with its band against a deadline, and the status that follows."""

    deadline: dt.datetime
    status: str
    basis: str = ForecastBasis.NONE
    eta: dt.datetime | None = None
    eta_low: dt.datetime | None = None  # the fast end: the earliest plausible finish
    eta_high: dt.datetime | None = None  # the slow end: the latest plausible finish
    throughput_per_hour: float | None = None  # events per hour at the current pace
    rates: dict[int, float | None] = field(default_factory=dict)  # window (s) -> events/h
    remaining: int = 0
    finished_at: dt.datetime | None = None
    reason: str = ""  # why it is blocked: shown in place of an ETA

    @property
    def status_label(self) -> str:
        return ProgressStatus(self.status).label

    @property
    def badge(self) -> str:
        return STATUS_BADGE.get(self.status, "info")

    @property
    def is_estimate(self) -> bool:
        return self.basis == ForecastBasis.ESTIMATE

    @property
    def stalled(self) -> bool:
        """Measured, but nothing progressed in any window."""
        return self.basis == ForecastBasis.MEASURED and self.eta is None

    @property
    def slack(self) -> dt.timedelta | None:
        """Deadline minus the central ETA (negative: late by that much)."""
        return self.deadline - self.eta if self.eta else None


def window_start(points: Iterable[Point], now: dt.datetime, window_s: float) -> Point | None:
    """Where a window starts: the latest point at or before ``now - window``, else the
    earliest point (work younger than the window is measured since it began)."""
    cutoff = now - dt.timedelta(seconds=window_s)
    before = [p for p in points if p.at <= cutoff]
    if before:
        return max(before, key=lambda p: p.at)
    after = [p for p in points if p.at <= now]
    return min(after, key=lambda p: p.at) if after else None


def measure(
    points: Iterable[Point],
    now: dt.datetime,
    done: int,
    windows_s: Iterable[int] | None = None,
    min_span_s: float | None = None,
) -> dict[int, float | None]:
    """Events per hour over each window (None where the window is too short to tell)."""
    points = list(points)
    windows_s = tuple(windows_s or conf.forecast_windows_s())
    min_span_s = conf.forecast_min_span_s() if min_span_s is None else min_span_s
    rates: dict[int, float | None] = {}
    for window in windows_s:
        start = window_start(points, now, window)
        span = (now - start.at).total_seconds() if start else 0.0
        if start is None or span <= 0 or span < min_span_s:
            rates[window] = None
            continue
        rates[window] = max(done - start.events, 0) * HOUR / span
    return rates


# Beyond this an ETA means "never at this pace": no datetime arithmetic can hold the year
# 477358, and no page should try to print it.
MAX_ETA_HOURS = 100 * 365 * 24


def _eta(now: dt.datetime, remaining: int, rate: float | None) -> dt.datetime | None:
    if not rate or rate <= 0:
        return None
    hours = remaining / rate
    if hours > MAX_ETA_HOURS:
        return None
    return now + dt.timedelta(hours=hours)


def label(deadline: dt.datetime, eta_low: dt.datetime | None, eta_high: dt.datetime | None) -> str:
    """The status a band gives against the deadline."""
    if eta_high is not None and eta_high <= deadline:
        return ProgressStatus.ON_TRACK
    if eta_low is not None and eta_low <= deadline:
        return ProgressStatus.AT_RISK
    return ProgressStatus.LATE


def from_estimate(status: str) -> str:
    """The scheduler's feasibility label as a progress status."""
    return {
        Feasibility.ON_TRACK: ProgressStatus.ON_TRACK,
        Feasibility.AT_RISK: ProgressStatus.AT_RISK,
        Feasibility.LATE: ProgressStatus.LATE,
        Feasibility.DONE: ProgressStatus.DONE,
    }.get(status, ProgressStatus.UNKNOWN)


def forecast(
    *,
    now: dt.datetime,
    done: int,
    target: int,
    deadline: dt.datetime,
    rates: Mapping[int, float | None],
    estimate_finish: dt.datetime | None = None,
    estimate_status: str | None = None,
    on_hold: bool = False,
    complete: bool = False,
    finished_at: dt.datetime | None = None,
    will_not_run: bool = False,
    blocked: str = "",
    margin: float | None = None,
) -> Forecast:
    """Project the finish of ``target - done`` events from measured ``rates``.

    ``rates`` maps windows (shortest first) to events per hour (see ``measure``).
    ``estimate_*`` is the scheduler's projection, used while nothing is done.
    ``complete`` marks work that is finished whatever the counters say (a completed
    request or campaign; ``finished_at`` when known), ``will_not_run`` work that was
    cancelled (status ``unknown``). Work whose events are all done is done too.
    ``blocked`` says why work left will not run again without an operator: status
    ``blocked``, no ETA (an ETA from past throughput would slide forward forever).
    """
    margin = conf.forecast_margin() if margin is None else margin
    remaining = max(target - done, 0)
    result = Forecast(deadline=deadline, status=ProgressStatus.UNKNOWN, remaining=remaining)
    result.rates = dict(rates)
    if complete or (target > 0 and remaining == 0):
        result.status = ProgressStatus.DONE
        result.finished_at = finished_at
        result.eta = result.eta_low = result.eta_high = finished_at
        return result
    if will_not_run:
        return result
    usable = [r for r in rates.values() if r is not None]
    if done > 0 and usable:
        central = next(r for r in rates.values() if r is not None)
        fast = max(usable) * (1 + margin)
        slow = min(usable) * (1 - margin)
        result.basis = ForecastBasis.MEASURED
        result.throughput_per_hour = central
        result.eta = _eta(now, remaining, central)
        result.eta_low = _eta(now, remaining, fast)
        result.eta_high = _eta(now, remaining, slow)
        result.status = label(deadline, result.eta_low, result.eta_high)
    elif estimate_status is not None:
        result.basis = ForecastBasis.ESTIMATE
        result.eta = estimate_finish
        result.status = from_estimate(estimate_status)
        if result.status == ProgressStatus.DONE:  # planned but nothing counted yet
            result.status = ProgressStatus.UNKNOWN
    if on_hold:
        result.status = ProgressStatus.ON_HOLD
    elif blocked:
        result.status = ProgressStatus.BLOCKED
        result.reason = blocked
        result.eta = result.eta_low = result.eta_high = None
    return result


def forecast_from_history(
    history: Iterable[Point],
    *,
    now: dt.datetime,
    target: int,
    deadline: dt.datetime,
    windows_s: Iterable[int] | None = None,
    min_span_s: float | None = None,
    **kwargs,
) -> Forecast:
    """The forecast at ``now`` from a history of points (the last one is "done now")."""
    points = sorted((p for p in history if p.at <= now), key=lambda p: p.at)
    done = points[-1].events if points else 0
    rates = measure(points, now, done, windows_s, min_span_s)
    return forecast(now=now, done=done, target=target, deadline=deadline, rates=rates, **kwargs)

"""Burn-up charts as server-side SVG geometry: no chart library, nothing to load, CSP-safe.

``burn_up`` turns a snapshot series, the target, the deadline and the forecast
into coordinates; ``templates/monitoring/_burnup.html`` draws them with plain SVG
elements (presentation attributes and classes from monitoring.css, no inline
styles or scripts).

Two spans: the *active* window (the default) runs from the launch to the later of
now and the projected end, so a campaign of a few hours due in six weeks is not a
sliver at the left; a deadline outside it is marked at the edge it lies beyond,
with its date. The *whole* span runs on to the deadline.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from django.utils import timezone

from .services.forecast import Forecast, Point

WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 20, 16, 40
MAX_POINTS = 300  # a polyline needs no more than the pixels it spans
ACTIVE, WHOLE = "active", "whole"
SPANS = (ACTIVE, WHOLE)


@dataclass
class Tick:
    pos: float
    label: str


@dataclass
class Marker:
    x: float
    y: float
    label: str


@dataclass
class BurnUp:
    """Everything the template draws, in SVG user units."""

    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: float = WIDTH - RIGHT
    top: int = TOP
    bottom: float = HEIGHT - BOTTOM
    actual: str = ""  # polyline points
    projected: str = ""  # central projection, a polyline
    band: str = ""  # polygon between the fast and the slow pace
    estimate: bool = False
    target_y: float = 0.0
    deadline_x: float | None = None  # None: outside the chart (see deadline_edge)
    deadline_edge: str = ""  # "left" or "right": the deadline lies beyond that edge
    deadline_label: str = ""  # its date, for the edge marker
    span: str = ACTIVE
    now_x: float | None = None
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    description: str = ""

    @property
    def empty(self) -> bool:
        return not self.actual


def human(n: float) -> str:
    """``1_250_000`` -> ``1.25M``: compact axis labels."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.3g}{suffix}"
    return f"{n:.0f}"


def downsample(points: list[Point], limit: int = MAX_POINTS) -> list[Point]:
    """At most ``limit`` points, evenly spread, always keeping the first and the last."""
    if len(points) <= limit:
        return points
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def _time_ticks(start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, str]]:
    span = (end - start).total_seconds()
    steps = [
        (600, "%H:%M"),
        (1800, "%H:%M"),
        (3600, "%H:%M"),
        (3 * 3600, "%d %b %H:%M"),
        (6 * 3600, "%d %b %H:%M"),
        (12 * 3600, "%d %b %H:%M"),
        (86400, "%d %b"),
        (2 * 86400, "%d %b"),
        (7 * 86400, "%d %b"),
        (14 * 86400, "%d %b"),
        (30 * 86400, "%d %b"),
    ]
    step, fmt = next(((s, f) for s, f in steps if span / s <= 8), (span / 6 or 1, "%d %b"))
    local_start = timezone.localtime(start)
    offset = local_start.utcoffset() or dt.timedelta(0)
    first = math.ceil((start.timestamp() + offset.total_seconds()) / step) * step
    ticks = []
    t = first - offset.total_seconds()
    while t <= end.timestamp():
        moment = dt.datetime.fromtimestamp(t, tz=dt.UTC)
        ticks.append((moment, timezone.localtime(moment).strftime(fmt)))
        t += step
    return ticks


def burn_up(
    history: list[Point],
    *,
    target: int,
    deadline: dt.datetime,
    now: dt.datetime,
    done: int,
    forecast: Forecast | None = None,
    start: dt.datetime | None = None,
    milestones: dict[str, dt.datetime] | None = None,
    milestone_labels: dict[str, str] | None = None,
    span: str = ACTIVE,
) -> BurnUp:
    """Geometry of a burn-up chart: cumulative events against time.

    The actual path ends at ``now`` with ``done`` events (the counters are fresher
    than the last snapshot); the projection runs from there to the ETA, the band
    between the fast and the slow end, clipped at the right edge. ``span``: the
    active window or the whole span to the deadline (see the module docstring).
    """
    chart = BurnUp(span=span if span in SPANS else ACTIVE)
    points = sorted((p for p in history if p.at <= now), key=lambda p: p.at)
    points.append(Point(now, done))
    t0 = start or points[0].at
    if t0 >= now:
        t0 = now - dt.timedelta(hours=1)
    points = [p for p in points if p.at >= t0]
    if start is not None and (not points or points[0].at > start):
        points.insert(0, Point(start, 0))
    eta = forecast.eta if forecast is not None and forecast.remaining > 0 else None
    if chart.span == WHOLE:
        horizon = max(deadline, now, eta or now)
        # A far-off ETA (a stalled campaign) must not squash the history to a sliver.
        longest = max(deadline, now) + (max(deadline, now) - t0)
        t1 = min(horizon + (horizon - t0) * 0.04, longest)
    else:
        horizon = max(now, eta or now)
        # The same for the active window: the projection is at most twice what has run.
        longest = now + 2 * max(now - t0, dt.timedelta(hours=1))
        horizon = min(horizon, longest)
        t1 = horizon + (horizon - t0) * 0.04
    top = max(target, done, 1) * 1.08
    x_span = (t1 - t0).total_seconds() or 1.0

    def x(moment: dt.datetime) -> float:
        return round(
            chart.left + (chart.right - chart.left) * (moment - t0).total_seconds() / x_span, 1
        )

    def y(events: float) -> float:
        return round(chart.bottom - (chart.bottom - chart.top) * events / top, 1)

    chart.actual = " ".join(f"{x(p.at)},{y(p.events)}" for p in downsample(points))
    chart.target_y = y(target)
    chart.now_x = x(now)
    if t0 <= deadline <= t1:
        chart.deadline_x = x(deadline)
    else:
        chart.deadline_edge = "right" if deadline > t1 else "left"
        chart.deadline_label = f"{timezone.localtime(deadline - dt.timedelta(seconds=1)):%Y-%m-%d}"
    chart.x_ticks = [Tick(x(t), label) for t, label in _time_ticks(t0, t1)]
    chart.y_ticks = [Tick(y(target * f), human(target * f)) for f in (0, 0.25, 0.5, 0.75, 1.0)]

    def path_to(eta: dt.datetime | None, rate_per_s: float | None) -> tuple[float, float] | None:
        """Where a straight projection from (now, done) leaves the chart or meets the target."""
        if eta is None or rate_per_s is None or rate_per_s <= 0:
            return None
        if eta <= t1:
            return x(eta), y(target)
        return x(t1), y(done + rate_per_s * (t1 - now).total_seconds())

    def rate(eta: dt.datetime | None) -> float | None:
        if eta is None or eta <= now:
            return None
        return (target - done) / (eta - now).total_seconds()

    if forecast is not None and forecast.remaining > 0 and forecast.eta is not None:
        start_xy = (x(now), y(done))
        end = path_to(forecast.eta, rate(forecast.eta))
        if end:
            chart.projected = f"{start_xy[0]},{start_xy[1]} {end[0]},{end[1]}"
        chart.estimate = forecast.is_estimate
        fast = path_to(forecast.eta_low, rate(forecast.eta_low))
        slow_rate = rate(forecast.eta_high)
        slow = path_to(forecast.eta_high, slow_rate)
        if fast and not forecast.is_estimate:
            corners = [start_xy, fast]
            if fast[1] == chart.target_y:  # reached the target inside the chart
                corners.append((slow[0] if slow and slow[1] == chart.target_y else x(t1), fast[1]))
            if slow is None:  # the slow end never finishes: the band opens to the edge
                corners.append((x(t1), y(done)))
            elif slow[1] != chart.target_y:
                corners.append(slow)
            chart.band = " ".join(f"{a},{b}" for a, b in corners)
    labels = milestone_labels or {}
    history_at = points
    for kind, at in (milestones or {}).items():
        if not t0 <= at <= now:
            continue
        before = [p for p in history_at if p.at <= at]
        events = before[-1].events if before else 0
        chart.markers.append(Marker(x(at), y(events), labels.get(kind, kind)))
    chart.description = (
        f"{human(done)} of {human(target)} events done; deadline "
        f"{timezone.localtime(deadline - dt.timedelta(seconds=1)):%Y-%m-%d}"
        + (
            f"; projected finish {timezone.localtime(forecast.eta):%Y-%m-%d %H:%M}"
            if forecast is not None and forecast.eta and forecast.remaining
            else ""
        )
    )
    return chart

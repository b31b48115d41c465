"""Template helpers of the monitoring pages: status badges, SVG bars, compact numbers.

Bars are small inline SVGs whose sizes are presentation attributes (``width``),
never ``style=`` attributes: the content security policy forbids inline styles.
"""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone

from campaigns.choices import JobState

from ..charts import human
from ..choices import STATUS_BADGE, ProgressStatus

register = template.Library()

# Drawing order of job states in a stacked bar: finished work first, then in flight.
BAR_STATES = [
    JobState.SUCCEEDED,
    JobState.RUNNING,
    JobState.QUEUED,
    JobState.HELD,
    JobState.READY,
    JobState.PLANNED,
    JobState.FAILED,
    JobState.LOST,
    JobState.CANCELLED,
]


@register.filter
def get_item(mapping, key):
    """``mapping[key]`` in a template (None when missing)."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def compact(value) -> str:
    """``1250000`` -> ``1.25M``."""
    try:
        return human(float(value))
    except (TypeError, ValueError):
        return "—"


@register.filter
def per_hour(value) -> str:
    """A rate for display: ``1.2k/h``, or a dash when unknown."""
    if value is None:
        return "—"
    return f"{human(float(value))}/h" if value >= 10 else f"{float(value):.2g}/h"


@register.filter
def when(value: dt.datetime | None) -> str:
    """A moment in the site's time zone, to the minute."""
    if not value:
        return "—"
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")


@register.filter
def day_of(deadline: dt.datetime | None) -> str:
    """The deadline day of a deadline instant (which is midnight after it)."""
    if not deadline:
        return "—"
    return timezone.localtime(deadline - dt.timedelta(seconds=1)).strftime("%Y-%m-%d")


@register.filter
def status_label(status: str) -> str:
    try:
        return ProgressStatus(status).label
    except ValueError:
        return status


@register.filter
def status_badge(status: str) -> str:
    return STATUS_BADGE.get(status, "info")


@register.inclusion_tag("monitoring/_status.html")
def status(forecast, show_basis: bool = False):
    """The status badge of a forecast; "(estimate)" when it is the scheduler's."""
    return {"f": forecast, "show_basis": show_basis}


@register.inclusion_tag("_bar.html")
def bar(percent, label: str = "", status: str = ""):
    """A progress bar (0..100) drawn as SVG."""
    try:
        value = max(0.0, min(float(percent), 100.0))
    except (TypeError, ValueError):
        value = 0.0
    return {"value": value, "label": label, "status": status}


@register.inclusion_tag("monitoring/_jobs_bar.html")
def jobs_bar(jobs: dict, total: int | None = None):
    """Jobs by state as one stacked SVG bar, with a legend of the non-zero states."""
    counts = [(state, int(jobs.get(state, 0) or 0)) for state in BAR_STATES]
    whole = total or sum(n for _s, n in counts) or 1
    segments, x = [], 0.0
    for state, n in counts:
        if n <= 0:
            continue
        width = 100.0 * n / whole
        segments.append(
            {"state": state, "label": JobState(state).label, "n": n, "x": x, "w": width}
        )
        x += width
    return {"segments": segments, "total": sum(n for _s, n in counts)}

"""Template helpers of the monitoring pages: status badges, SVG bars, compact numbers.

Bars are small inline SVGs whose sizes are presentation attributes (``width``),
never ``style=`` attributes: the content security policy forbids inline styles.
"""

from __future__ import annotations

import datetime as dt

from django import template
from django.template.defaultfilters import floatformat
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe

from campaigns.choices import JobState

from ..charts import human
from ..choices import ProgressStatus

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
JOB_LABELS = {state: JobState(state).label for state in BAR_STATES}


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
def kib(value) -> str:
    """Memory in KiB for display: ``2048000`` -> ``2.0 GiB``."""
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return "—"
    for unit in ("KiB", "MiB", "GiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "KiB" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


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


# The three tags below draw small pieces that pages repeat dozens or hundreds of times (a
# bar and a jobs bar per stage, a badge per row). They build their markup in Python
# with format_html (every value escaped) instead of rendering a template each time: the
# same bytes, at a fraction of the cost of a template render per call. tests/monitoring/
# test_tags.py checks them against the templates they replaced.


@register.simple_tag
def status(forecast, show_basis: bool = False) -> str:
    """The status badge of a forecast; "(estimate)" when it is the scheduler's."""
    if forecast is None:
        return mark_safe('<span class="badge "></span>\n')
    markup = '<span class="badge {}">{}{}</span>'
    if show_basis and forecast.basis == "measured":
        markup += ' <span class="muted small">from measured throughput</span>'
    estimate = " (estimate)" if forecast.is_estimate else ""
    return format_html(markup + "\n", forecast.badge, forecast.status_label, estimate)


@register.simple_tag
def bar(percent, label: str = "", status: str = "") -> str:
    """A progress bar (0..100) drawn as SVG (the markup of ``_bar.html``)."""
    try:
        value = max(0.0, min(float(percent), 100.0))
    except (TypeError, ValueError):
        value = 0.0
    markup = (
        '<svg class="bar{}" viewBox="0 0 100 10" preserveAspectRatio="none" role="img" '
        'aria-label="{}: {}%"><rect class="bar-track" x="0" y="0" width="100" height="10" '
        'rx="5"/><rect class="bar-fill" x="0" y="0" width="{}" height="10" rx="5"/></svg>\n'
    )
    return format_html(
        markup,
        format_html(" bar-{}", status) if status else "",
        label or "progress",
        floatformat(value, 1),
        f"{value:.2f}",
    )


@register.simple_tag
def jobs_bar(jobs: dict, total: int | None = None) -> str:
    """Jobs by state as one stacked SVG bar, with a legend of the non-zero states."""
    counts = [(state, int(jobs.get(state, 0) or 0)) for state in BAR_STATES]
    if not sum(n for _s, n in counts):
        return mark_safe('<span class="muted small">No jobs planned.</span>\n')
    whole = total or sum(n for _s, n in counts) or 1
    segments, x = [], 0.0
    for state, n in counts:
        if n <= 0:
            continue
        width = 100.0 * n / whole
        label = escape(JOB_LABELS[state])  # (the label in the active language)
        segments.append((escape(state), label, n, x, width))
        x += width
    # Every piece is escaped above or is a number: no escaping per piece (format_html
    # here cost more than the rest of the dashboard's rendering).
    summary = ",".join(f" {n} {label.lower()}" for _state, label, n, _x, _w in segments)
    rects = "".join(
        f'<rect class="job-{state}" x="{x:.3f}" y="0" width="{w:.3f}" height="8">'
        f"<title>{label}: {n}</title></rect>"
        for state, label, n, x, w in segments
    )
    legend = "".join(
        f'<li><span class="swatch job-{state}" aria-hidden="true"></span>{label} {n}</li>'
        for state, label, n, _x, _w in segments
    )
    return mark_safe(  # noqa: S308 (escaped pieces and numbers only)
        '<svg class="jobs-bar" viewBox="0 0 100 8" preserveAspectRatio="none" role="img" '
        f'aria-label="Jobs by state:{summary}">{rects}</svg>\n<ul class="legend">{legend}</ul>\n'
    )

"""The tags that draw badges and bars write exactly what their templates wrote.

``status``, ``bar`` and ``jobs_bar`` were inclusion tags (a template render per call,
hundreds per page); they now build the same markup in Python. The templates they
replaced are kept here as the reference.
"""

import pytest
from django.template import Context, Template

from campaigns.choices import JobState
from monitoring.choices import ForecastBasis, ProgressStatus
from monitoring.services.forecast import Forecast
from monitoring.templatetags import monitoring as tags

STATUS = (
    '<span class="badge {{ f.badge }}">{{ f.status_label }}{% if f.is_estimate %} (es'
    'timate){% endif %}</span>{% if show_basis and f.basis == "measured" %} <span cla'
    'ss="muted small">from measured throughput</span>{% endif %}\n'
)
BAR = (
    '<svg class="bar{% if status %} bar-{{ status }}{% endif %}" viewBox="0 0 100 10"'
    ' preserveAspectRatio="none" role="img" aria-label="{{ label|default:\'progress\' }'
    '}: {{ value|floatformat:1 }}%"><rect class="bar-track" x="0" y="0" width="100" h'
    'eight="10" rx="5"/><rect class="bar-fill" x="0" y="0" width="{{ value|stringform'
    'at:\'.2f\' }}" height="10" rx="5"/></svg>\n'
)
JOBS_BAR = (
    '{% if total %}<svg class="jobs-bar" viewBox="0 0 100 8" preserveAspectRatio="non'
    'e" role="img" aria-label="Jobs by state:{% for s in segments %} {{ s.n }} {{ s.l'
    'abel|lower }}{% if not forloop.last %},{% endif %}{% endfor %}">{% for s in segm'
    'ents %}<rect class="job-{{ s.state }}" x="{{ s.x|stringformat:\'.3f\' }}" y="0" wi'
    'dth="{{ s.w|stringformat:\'.3f\' }}" height="8"><title>{{ s.label }}: {{ s.n }}</t'
    'itle></rect>{% endfor %}</svg>\n<ul class="legend">{% for s in segments %}<li><sp'
    'an class="swatch job-{{ s.state }}" aria-hidden="true"></span>{{ s.label }} {{ s'
    '.n }}</li>{% endfor %}</ul>{% else %}<span class="muted small">No jobs planned.<'
    "/span>{% endif %}\n"
)


def reference(text: str, **context) -> str:
    return Template("{% load monitoring %}" + text).render(Context(context))


def tag(markup: str, **context) -> str:
    return Template("{% load monitoring %}" + markup).render(Context(context))


@pytest.mark.parametrize("status", [*ProgressStatus.values, "odd<&>"])
@pytest.mark.parametrize("basis", ForecastBasis.values)
@pytest.mark.parametrize("show_basis", [False, True])
def test_status(status, basis, show_basis, settings):
    import datetime as dt

    f = Forecast(deadline=dt.datetime(2026, 12, 1, tzinfo=dt.UTC), status=status, basis=basis)
    if status == "odd<&>":
        f.__class__ = type("Odd", (Forecast,), {"status_label": "<b>&</b>"})
    want = reference(STATUS, f=f, show_basis=show_basis)
    assert tags.status(f, show_basis) == want
    assert tag("{% status f show_basis %}", f=f, show_basis=show_basis) == want


def test_status_of_nothing():
    assert tags.status(None) == reference(STATUS, f=None, show_basis=False)


@pytest.mark.parametrize(
    "percent", [0, 12.345, 45.65, 45.75, 99.95, 100, 250, -3, "7.25", None, "x", 1 / 3]
)
@pytest.mark.parametrize(
    ("label", "status"),
    [("", ""), ("events done", "late"), ("<REQ & 1>", 'on"track'), (None, None)],
)
def test_bar(percent, label, status):
    try:
        value = max(0.0, min(float(percent), 100.0))
    except (TypeError, ValueError):
        value = 0.0
    want = reference(BAR, value=value, label=label, status=status)
    assert tags.bar(percent, label, status) == want


@pytest.mark.parametrize(
    "jobs",
    [
        {},
        {JobState.SUCCEEDED: 0},
        {JobState.SUCCEEDED: 1},
        {JobState.SUCCEEDED: 2622, JobState.RUNNING: 555, JobState.QUEUED: 576, "planned": 1778},
        {state: n + 1 for n, state in enumerate(JobState.values)},
        {JobState.FAILED: "12", JobState.LOST: None, JobState.CANCELLED: 3},
    ],
)
@pytest.mark.parametrize("total", [None, 0, 10_000])
def test_jobs_bar(jobs, total):
    counts = [(s, int(jobs.get(s, 0) or 0)) for s in tags.BAR_STATES]
    whole = total or sum(n for _s, n in counts) or 1
    segments, x = [], 0.0
    for state, n in counts:
        if n > 0:
            w = 100.0 * n / whole
            segments.append(
                {"state": state, "label": JobState(state).label, "n": n, "x": x, "w": w}
            )
            x += w
    want = reference(JOBS_BAR, segments=segments, total=sum(n for _s, n in counts))
    assert tags.jobs_bar(jobs, total) == want

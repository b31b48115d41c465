"""Text output: the progress block's bar, ETA band and margin against the deadline."""

from __future__ import annotations

import datetime as dt

from opos_cli import render
from opos_cli.client import field_errors

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
CAMPAIGN = {"name": "MCC5.0", "experiment": "dune", "state": "active", "deadline": "2026-12-03"}


def block(**progress) -> str:
    data = {
        "events_done": 500,
        "events_target": 1000,
        "jobs": {"running": 3, "failed": 0},
        "throughput_per_hour": 100.0,
        "eta": "2026-12-05T12:00:00+00:00",
        "eta_low": "2026-12-04T12:00:00+00:00",
        "eta_high": "2026-12-06T12:00:00+00:00",
        "deadline": "2026-12-03",
        "status": "late",
    }
    data.update(progress)
    return render.progress(CAMPAIGN, data, unicode=False, now=NOW)


def test_half_done_and_late():
    text = block()
    assert "[####################--------------------]  50.0%  500 / 1,000 events" in text
    assert "jobs      running 3" in text and "failed" not in text  # zero counts hidden
    assert "ETA       2026-12-05 12:00 UTC (in 4d 0h)" in text
    assert "deadline  2026-12-03 · late, " in text and " late" in text.splitlines()[-1]


def test_before_any_job_finished():
    text = block(events_done=0, throughput_per_hour=None, eta=None, status="on_track")
    assert "  0.0%" in text
    assert "no throughput measured yet" in text
    assert "ETA       not known yet" in text
    assert "deadline  2026-12-03 · on track" in text


def test_an_empty_target_does_not_divide_by_zero():
    assert "  0.0%  0 / 0 events" in block(events_done=0, events_target=0)


def test_durations():
    assert render.duration(59) == "0m"
    assert render.duration(3 * 3600 + 5 * 60) == "3h 05m"
    assert render.duration(2 * 86400 + 7200) == "2d 2h"


def test_drf_field_errors_become_lines():
    body = {
        "samples": [{}, {"events": ["must be greater than zero"]}],
        "deadline": ["2020-01-01 is in the past"],
        "non_field_errors": ["Unable to log in."],
    }
    assert field_errors(body) == [
        "samples[1].events: must be greater than zero",
        "deadline: 2020-01-01 is in the past",
        "Unable to log in.",
    ]


def test_tables_align():
    text = render.table([("a", "long value", "x"), ("bbb", "v", "y")], ("H1", "H2", "H3"))
    assert text.splitlines() == ["H1   H2          H3", "a    long value  x", "bbb  v           y"]

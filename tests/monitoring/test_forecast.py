"""Forecasts from measured throughput, and the status labels their band gives."""

import datetime as dt

import pytest

from campaigns.choices import Feasibility
from monitoring.choices import ForecastBasis, ProgressStatus
from monitoring.services.forecast import (
    Point,
    forecast,
    forecast_from_history,
    label,
    measure,
    window_start,
)

from .builders import seed_shape

T0 = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
TARGET = 3_000_000
H = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
WINDOWS = (6 * 3600, 24 * 3600)


def points(shape):
    return [Point(at, events) for at, events in shape]


def at_day(days: float, deadline_days: float, **kwargs):
    now = T0 + dt.timedelta(days=days)
    return forecast_from_history(
        points(seed_shape(T0, TARGET, hours=days * 24, step_h=0.25)),
        now=now,
        target=TARGET,
        deadline=T0 + dt.timedelta(days=deadline_days),
        windows_s=WINDOWS,
        min_span_s=1800,
        margin=0.1,
        **kwargs,
    )


def test_the_seed_round_half_done_after_two_and_a_half_days_finishes_on_day_four():
    f = at_day(2.5, deadline_days=5)
    assert f.basis == ForecastBasis.MEASURED
    assert f.remaining == TARGET // 2
    # Full speed is R = 1M events a day; the last 6 h ran at full speed, so the central
    # ETA is 1.5 days away: day 4.
    assert f.throughput_per_hour == pytest.approx(TARGET / 3 / 24, rel=1e-3)
    assert f.eta == pytest.approx(T0 + 4 * DAY, abs=dt.timedelta(minutes=5))
    # The 24 h window still holds some ramp-up: slower, so the band's slow end is later.
    assert f.rates[24 * 3600] < f.rates[6 * 3600]
    assert f.eta_low < f.eta < f.eta_high
    assert f.eta_high < T0 + 4.3 * DAY
    assert f.status == ProgressStatus.ON_TRACK


def test_the_same_round_against_tighter_deadlines_is_at_risk_then_late():
    ontime = at_day(2.5, deadline_days=5)
    between = ontime.eta_low + (ontime.eta_high - ontime.eta_low) / 2
    deadline_days = (between - T0) / DAY
    assert at_day(2.5, deadline_days=deadline_days).status == ProgressStatus.AT_RISK
    assert at_day(2.5, deadline_days=3.5).status == ProgressStatus.LATE


def test_during_the_ramp_up_the_band_is_wide_and_the_pace_is_the_recent_one():
    f = at_day(1.0, deadline_days=5)
    # A day in, the pace is still rising: the 6 h window sees more than the 24 h one.
    assert f.rates[6 * 3600] > f.rates[24 * 3600]
    assert f.eta_high - f.eta_low > DAY


def test_labels_follow_the_band():
    deadline = T0 + 10 * DAY
    assert label(deadline, T0 + DAY, T0 + 2 * DAY) == ProgressStatus.ON_TRACK
    assert label(deadline, T0 + 9 * DAY, T0 + 11 * DAY) == ProgressStatus.AT_RISK
    assert label(deadline, T0 + 11 * DAY, T0 + 12 * DAY) == ProgressStatus.LATE
    # A slow end that never arrives (no progress at all in a window) is not "on track".
    assert label(deadline, T0 + 9 * DAY, None) == ProgressStatus.AT_RISK
    assert label(deadline, None, None) == ProgressStatus.LATE


def test_a_steady_pace_still_has_a_band():
    history = [Point(T0 + i * H, 1000 * i) for i in range(30)]
    f = forecast_from_history(
        history,
        now=T0 + 29 * H,
        target=100_000,
        deadline=T0 + 200 * H,
        windows_s=WINDOWS,
        min_span_s=1800,
        margin=0.1,
    )
    assert f.rates[6 * 3600] == pytest.approx(1000)
    assert f.rates[24 * 3600] == pytest.approx(1000)
    assert f.eta == pytest.approx(T0 + 100 * H, abs=dt.timedelta(seconds=1))
    assert f.eta_low < f.eta < f.eta_high


def test_before_any_event_is_done_the_schedulers_estimate_is_used_and_labelled():
    finish = T0 + 3 * DAY
    f = forecast(
        now=T0,
        done=0,
        target=1000,
        deadline=T0 + 5 * DAY,
        rates={21600: 0.0},
        estimate_finish=finish,
        estimate_status=Feasibility.ON_TRACK,
    )
    assert f.basis == ForecastBasis.ESTIMATE
    assert f.is_estimate
    assert f.eta == finish
    assert f.eta_low is None and f.eta_high is None
    assert f.status == ProgressStatus.ON_TRACK
    late = forecast(
        now=T0,
        done=0,
        target=1000,
        deadline=T0 + DAY,
        rates={},
        estimate_finish=None,
        estimate_status=Feasibility.LATE,
    )
    assert late.status == ProgressStatus.LATE and late.eta is None


def test_no_estimate_and_nothing_done_is_unknown():
    f = forecast(now=T0, done=0, target=1000, deadline=T0 + DAY, rates={})
    assert f.basis == ForecastBasis.NONE
    assert f.status == ProgressStatus.UNKNOWN


def test_a_window_too_short_to_tell_falls_back_to_the_estimate():
    history = [Point(T0, 0), Point(T0 + dt.timedelta(minutes=10), 50)]
    f = forecast_from_history(
        history,
        now=T0 + dt.timedelta(minutes=10),
        target=1000,
        deadline=T0 + DAY,
        windows_s=WINDOWS,
        min_span_s=1800,
        estimate_finish=T0 + H,
        estimate_status=Feasibility.ON_TRACK,
    )
    assert f.basis == ForecastBasis.ESTIMATE


def test_stalled_work_is_late():
    history = [Point(T0, 0), Point(T0 + H, 500)] + [Point(T0 + (2 + i) * H, 500) for i in range(30)]
    f = forecast_from_history(
        history,
        now=T0 + 31 * H,
        target=1000,
        deadline=T0 + 60 * DAY,
        windows_s=WINDOWS,
        min_span_s=1800,
    )
    assert f.stalled
    assert f.status == ProgressStatus.LATE


def test_done_and_on_hold_override_the_band():
    done = forecast(now=T0, done=1000, target=1000, deadline=T0 - DAY, rates={})
    assert done.status == ProgressStatus.DONE
    held = forecast(
        now=T0,
        done=500,
        target=1000,
        deadline=T0 + 30 * DAY,
        rates={21600: 100.0},
        on_hold=True,
    )
    assert held.status == ProgressStatus.ON_HOLD
    assert held.eta is not None  # the projection is still shown
    complete = forecast(
        now=T0, done=10, target=1000, deadline=T0, rates={}, complete=True, finished_at=T0
    )
    assert complete.status == ProgressStatus.DONE and complete.finished_at == T0
    cancelled = forecast(now=T0, done=10, target=1000, deadline=T0, rates={}, will_not_run=True)
    assert cancelled.status == ProgressStatus.UNKNOWN


def test_window_start_takes_the_last_point_before_the_window_or_the_first_one():
    history = [Point(T0 + i * H, i) for i in range(10)]
    assert window_start(history, T0 + 9 * H, 6 * 3600) == Point(T0 + 3 * H, 3)
    assert window_start(history, T0 + 9 * H, 24 * 3600) == Point(T0, 0)
    assert window_start([], T0, 3600) is None
    rates = measure(history, T0 + 9 * H, 9, windows_s=WINDOWS, min_span_s=0)
    assert rates == {6 * 3600: pytest.approx(1.0), 24 * 3600: pytest.approx(1.0)}


@pytest.mark.django_db
def test_the_campaign_dashboard_reads_the_same_forecast_from_the_database(experiment, operator):
    """The seed round, as snapshots and counters: the dashboard's forecast matches."""
    from django.utils import timezone

    from monitoring.services import campaign_detail

    from .builders import history, launch, planned_campaign, set_progress

    now = timezone.now()
    start = now - dt.timedelta(days=2.5)
    campaign = planned_campaign(experiment, operator, events=12_000, per_job=100, days=3)
    campaign = launch(campaign, operator, at=start)
    history(campaign, [p for p in seed_shape(start, 12_000, hours=60, step_h=0.5) if p[0] < now])
    set_progress(campaign, 0.5)
    detail = campaign_detail(campaign, now=now)
    f = detail.forecast
    assert f.basis == ForecastBasis.MEASURED
    assert detail.progress.events_done == 6000
    assert f.eta == pytest.approx(start + 4 * DAY, abs=dt.timedelta(minutes=30))
    assert f.status == ProgressStatus.ON_TRACK  # deadline: the end of day 3 from now
    events_per_hour = {t.window_s: t.events_per_hour for t in detail.throughput}
    assert events_per_hour[6 * 3600] == pytest.approx(12_000 / 3 / 24, rel=0.02)

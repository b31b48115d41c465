"""Burn-up geometry: the path, the target, the deadline and the projected band."""

import datetime as dt

from monitoring.charts import ACTIVE, WHOLE, burn_up, downsample, human
from monitoring.choices import ProgressStatus
from monitoring.services.forecast import Forecast, Point

T0 = dt.datetime(2026, 11, 30, 0, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def xs(points: str) -> list[float]:
    return [float(p.split(",")[0]) for p in points.split()]


def ys(points: str) -> list[float]:
    return [float(p.split(",")[1]) for p in points.split()]


def test_a_measured_forecast_draws_the_projection_and_its_band():
    history = [Point(T0 + h * H, 100 * h) for h in range(24)]
    f = Forecast(
        deadline=T0 + 80 * H,
        status=ProgressStatus.ON_TRACK,
        basis="measured",
        eta=T0 + 60 * H,
        eta_low=T0 + 55 * H,
        eta_high=T0 + 66 * H,
        remaining=3600,
    )
    chart = burn_up(
        history,
        target=6000,
        deadline=f.deadline,
        now=T0 + 24 * H,
        done=2400,
        forecast=f,
        start=T0,
        span=WHOLE,
    )
    assert not chart.empty and not chart.estimate
    path = xs(chart.actual)
    assert path == sorted(path) and path[0] == chart.left
    assert ys(chart.actual)[-1] < ys(chart.actual)[0]  # it goes up (SVG y grows downwards)
    assert chart.left < chart.now_x < chart.deadline_x < chart.right
    # The projection ends on the target line; the band is a triangle from now to the target.
    assert ys(chart.projected)[-1] == chart.target_y
    assert len(chart.band.split()) == 3
    assert all(y == chart.target_y for y in ys(chart.band)[1:])
    assert [round(x) for x in xs(chart.band)[1:]] == sorted(round(x) for x in xs(chart.band)[1:])
    assert [t.label for t in chart.y_ticks] == ["0", "1.5k", "3k", "4.5k", "6k"]
    assert chart.x_ticks


def test_a_slow_end_beyond_the_chart_is_clipped_at_its_edge():
    f = Forecast(
        deadline=T0 + 48 * H,
        status=ProgressStatus.AT_RISK,
        basis="measured",
        eta=T0 + 40 * H,
        eta_low=T0 + 30 * H,
        eta_high=T0 + 500 * H,
        remaining=500,
    )
    chart = burn_up(
        [Point(T0, 0)],
        target=1000,
        deadline=f.deadline,
        now=T0 + 10 * H,
        done=500,
        forecast=f,
        start=T0,
    )
    assert max(xs(chart.band)) <= chart.right
    assert len(chart.band.split()) == 4  # now, fast end, target at the edge, slow at the edge


def test_an_estimate_is_a_dashed_line_without_a_band():
    f = Forecast(
        deadline=T0 + 48 * H,
        status=ProgressStatus.ON_TRACK,
        basis="estimate",
        eta=T0 + 20 * H,
        remaining=1000,
    )
    chart = burn_up([], target=1000, deadline=f.deadline, now=T0, done=0, forecast=f)
    assert chart.estimate and chart.projected and not chart.band


def test_helpers():
    assert human(1_250_000) == "1.25M"
    assert human(999) == "999"
    points = [Point(T0 + i * H, i) for i in range(1000)]
    few = downsample(points, 100)
    assert len(few) == 100 and few[0] == points[0] and few[-1] == points[-1]


def test_the_active_window_runs_to_the_projected_end_and_marks_a_far_deadline_at_its_edge():
    """A campaign of a day, due in six weeks: the active window is the day and its
    projected end; the deadline is named at the right edge, not drawn as a line."""
    history = [Point(T0 + h * H, 100 * h) for h in range(24)]
    f = Forecast(
        deadline=T0 + 42 * 24 * H,
        status=ProgressStatus.ON_TRACK,
        basis="measured",
        eta=T0 + 30 * H,
        eta_low=T0 + 28 * H,
        eta_high=T0 + 33 * H,
        remaining=600,
    )
    kwargs = dict(target=3000, deadline=f.deadline, now=T0 + 24 * H, done=2400, forecast=f)
    chart = burn_up(history, start=T0, **kwargs)
    assert chart.span == ACTIVE
    assert chart.deadline_x is None and chart.deadline_edge == "right"
    assert chart.deadline_label == f"{f.deadline - dt.timedelta(seconds=1):%Y-%m-%d}"
    # The window ends a little after the projected end: now is at 24 of ~31 hours.
    width = chart.right - chart.left
    assert 0.7 * width < chart.now_x - chart.left < 0.8 * width
    assert ys(chart.projected)[-1] == chart.target_y  # the projection reaches the target
    assert len(chart.band.split()) == 4  # the slow end leaves the chart at its edge
    # The whole span runs to the deadline: the day is a sliver, the deadline a line.
    whole = burn_up(history, start=T0, span=WHOLE, **kwargs)
    assert whole.deadline_x is not None and whole.deadline_edge == ""
    assert whole.now_x - whole.left < 0.05 * width


def test_a_done_campaign_is_drawn_to_now_and_a_past_deadline_inside_the_window():
    history = [Point(T0 + h * H, 100 * h) for h in range(11)]
    done = Forecast(deadline=T0 + 5 * H, status=ProgressStatus.DONE, basis="final", remaining=0)
    chart = burn_up(
        history,
        target=1000,
        deadline=done.deadline,
        now=T0 + 12 * H,
        done=1000,
        forecast=done,
        start=T0,
    )
    assert chart.projected == "" and chart.deadline_edge == ""
    assert chart.left < chart.deadline_x < chart.now_x < chart.right


def test_a_deadline_before_the_launch_is_marked_at_the_left_edge():
    chart = burn_up(
        [Point(T0, 0)], target=100, deadline=T0 - 48 * H, now=T0 + 2 * H, done=10, start=T0
    )
    assert chart.deadline_x is None and chart.deadline_edge == "left"
    assert burn_up([Point(T0, 0)], target=1, deadline=T0, now=T0 + H, done=0, span="x").span == (
        ACTIVE
    )


def test_the_dashboards_default_span_is_the_charts_active_span():
    from monitoring.services import dashboards

    assert dashboards.ACTIVE_SPAN == ACTIVE

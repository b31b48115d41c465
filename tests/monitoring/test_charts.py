"""Burn-up geometry: the path, the target, the deadline and the projected band."""

import datetime as dt

from monitoring.charts import burn_up, downsample, human
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
        history, target=6000, deadline=f.deadline, now=T0 + 24 * H, done=2400, forecast=f, start=T0
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

"""Fixtures of the monitoring tests: settings the forecasts depend on, pinned."""

import pytest


@pytest.fixture(autouse=True)
def _monitoring_settings(settings):
    settings.OPOS_FORECAST_WINDOWS_S = (6 * 3600, 24 * 3600)
    settings.OPOS_FORECAST_MIN_SPAN_S = 1800
    settings.OPOS_FORECAST_MARGIN = 0.1
    settings.OPOS_FULL_SPEED_FRACTION = 0.8
    settings.OPOS_BACKEND_CAPACITY = {"local": 20, "slurm": 1000, "htcondor": 5000}
    settings.OPOS_METRICS_TOKEN = ""
    settings.OPOS_METRICS_ALLOWED_NETWORKS = []

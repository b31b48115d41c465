"""Fixtures of the monitoring tests: settings the forecasts depend on, pinned, and a
production round under way."""

import datetime as dt

import pytest
from django.utils import timezone

from monitoring.services import record_snapshots

from .builders import history, launch, planned_campaign, set_progress


@pytest.fixture(autouse=True)
def _monitoring_settings(settings):
    settings.OPOS_FORECAST_WINDOWS_S = (6 * 3600, 24 * 3600)
    settings.OPOS_FORECAST_MIN_SPAN_S = 1800
    settings.OPOS_FORECAST_MARGIN = 0.1
    settings.OPOS_FULL_SPEED_FRACTION = 0.8
    settings.OPOS_BACKEND_CAPACITY = {"local": 20, "slurm": 1000, "htcondor": 5000}
    settings.OPOS_METRICS_TOKEN = ""
    settings.OPOS_METRICS_ALLOWED_NETWORKS = []


@pytest.fixture
def round_(experiment, operator):
    """Launched a day ago at 100 events an hour; 2400 of 6000 done."""
    start = timezone.now() - dt.timedelta(days=1)
    campaign = planned_campaign(
        experiment, operator, requests=2, events=3000, per_job=100, name="MCC5.0", days=5
    )
    campaign = launch(campaign, operator, at=start)
    history(campaign, [(start + dt.timedelta(hours=h), 100 * h) for h in range(24)])
    set_progress(campaign, 0.4, running=4)
    record_snapshots()
    return campaign

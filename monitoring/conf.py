"""Settings of the read side, with their defaults.

Read through these functions (not at import time) so tests can override them
with pytest-django's ``settings`` fixture.

``OPOS_SNAPSHOT_INTERVAL_S``
    How often beat records progress snapshots (seconds).
``OPOS_FORECAST_WINDOWS_S``
    Throughput windows, shortest first (default the last 6 h and 24 h).
``OPOS_FORECAST_MIN_SPAN_S``
    A window counts once its snapshots span at least this long.
``OPOS_FORECAST_MARGIN``
    The band's minimum half-width, as a fraction of the throughput.
``OPOS_FULL_SPEED_FRACTION``
    Running jobs over allotted slots that count as full speed (0.8).
``OPOS_DASHBOARD_REFRESH_S``
    How often dashboards refresh in place (seconds).
``OPOS_METRICS_TOKEN`` / ``OPOS_METRICS_ALLOWED_NETWORKS``
    Who may read ``/metrics`` besides signed-in operators.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings

HOUR = 3600
DAY = 86400
# Thinning policy: every snapshot of the last 48 h, one an hour up to 30 days, one a day after.
KEEP_RAW_S = 48 * HOUR
KEEP_HOURLY_S = 30 * DAY


def forecast_windows_s() -> tuple[int, ...]:
    windows = getattr(settings, "OPOS_FORECAST_WINDOWS_S", None) or (6 * HOUR, 24 * HOUR)
    return tuple(sorted(int(w) for w in windows))


def forecast_min_span_s() -> int:
    return int(getattr(settings, "OPOS_FORECAST_MIN_SPAN_S", 1800))


def forecast_margin() -> float:
    return float(getattr(settings, "OPOS_FORECAST_MARGIN", 0.1))


def full_speed_fraction() -> float:
    return float(getattr(settings, "OPOS_FULL_SPEED_FRACTION", 0.8))


def dashboard_refresh_s() -> int:
    return int(getattr(settings, "OPOS_DASHBOARD_REFRESH_S", 30))


def metrics_token() -> str:
    return str(getattr(settings, "OPOS_METRICS_TOKEN", "") or "")


def metrics_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Networks whose callers may read /metrics without a token (e.g. the Prometheus host)."""
    return [
        ipaddress.ip_network(item, strict=False)
        for item in getattr(settings, "OPOS_METRICS_ALLOWED_NETWORKS", []) or []
    ]

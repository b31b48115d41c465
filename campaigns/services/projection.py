"""The scheduler's projection as a read model, shared by every page and process.

Why: the forecasts of work with nothing done yet come from the scheduler's projection of
every open campaign (they share capacity and quotas) and, for requests not scheduled
yet, from one projection each "as if scheduled now". Computed per view, that was most of
a monitoring page's cost on a miss (two thirds of the experiment overview's), and every
page of every viewer computed the same thing again.

Now the worker computes it for the current data version (the beat task
``monitoring.refresh_projection``, every half ``OPOS_PROJECTION_S``) and stores it in the
shared cache; the pages read it. A page that finds none fresh enough (the version moved
since the last refresh, or a cold cache) computes it and stores it for the others: a
projection is computed about once per version and half-period, not once per view.

Key: the data version. It is bumped after every commit that writes what the projection
reads (``common.pagecache``), so a stored projection never outlives the data it was
computed from. Its age is bounded by ``OPOS_PROJECTION_S``: forecasts are computed
against "now", and a finish projected a minute ago is a minute off.

``OPOS_PROJECTION_S = 0`` (the default with the per-process LocMem cache of ``make
run``) computes the projection on every page, as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache

from common import pagecache
from requests_app.choices import UNSCHEDULED_STATES
from requests_app.models import ProductionRequest

from .. import conf
from ..scheduler import Decision, decide
from .feasibility import (
    CampaignForecast,
    ScheduleForecast,
    forecast_campaigns,
    forecast_unscheduled,
)
from .planning import CycleInputs, load_inputs

log = logging.getLogger(__name__)

KEY = "opos:projection"


@dataclass
class Projection:
    """Every open campaign's forecast and the scheduler's decision for it and its stages
    (why work waits), and every unscheduled request's "if scheduled now" forecast, by id,
    as of ``computed`` (a Unix time)."""

    campaigns: dict[int, CampaignForecast] = field(default_factory=dict)
    decision: Decision = field(default_factory=Decision)
    requests: dict[int, ScheduleForecast] = field(default_factory=dict)
    computed: float = 0.0
    seconds: float = 0.0  # what computing it took


def ttl_s() -> int:
    return int(getattr(settings, "OPOS_PROJECTION_S", 0) or 0)


def enabled() -> bool:
    return ttl_s() > 0


def _key(version: int) -> str:
    return f"{KEY}:{version}"


def compute() -> Projection:
    """The projection of the current data (five queries, two more for the requests)."""
    start = time.perf_counter()
    inputs = load_inputs(campaign_ids=())  # no stage labels: not shown
    unscheduled = list(
        ProductionRequest.objects.filter(state__in=sorted(UNSCHEDULED_STATES)).select_related(
            "experiment"
        )
    )
    return Projection(
        campaigns=forecast_campaigns(inputs),
        decision=decide(inputs.input, "slack", conf.priority_margin_s()),
        requests=forecast_unscheduled(unscheduled, inputs),
        computed=time.time(),
        seconds=time.perf_counter() - start,
    )


def shared() -> Projection | None:
    """The projection of the current data version, at most ``OPOS_PROJECTION_S`` old:
    stored, or computed now and stored. None when the read model is off."""
    return _get(max_age=ttl_s()) if enabled() else None


def refresh() -> Projection | None:
    """For the worker: the current version's projection, computed when none is stored or
    the one stored is older than half ``OPOS_PROJECTION_S`` (so pages find it fresh).
    None when there was nothing to do."""
    if not enabled():
        return None
    key = _key(pagecache.data_version())
    found = cache.get(key)
    if found is not None and time.time() - found.computed < ttl_s() / 2:
        return None
    return _store(key, compute())


def _get(max_age: float) -> Projection:
    # The version is read before any data: a projection stored under a version is never
    # computed from data older than it (the bump runs after the commit).
    key = _key(pagecache.data_version())
    found = cache.get(key)
    if found is not None and time.time() - found.computed < max_age:
        return found
    return _store(key, compute())


def _store(key: str, projection: Projection) -> Projection:
    try:
        cache.set(key, projection, timeout=ttl_s())
    except Exception:
        # A cache that refuses is a slower page, not a wrong one.
        log.exception("projection: could not store %s", key)
    return projection


def unscheduled_forecasts(
    requests: list[ProductionRequest],
    shared: Projection | None,
    inputs: Callable[[], CycleInputs],
) -> dict[int, ScheduleForecast]:
    """The "if scheduled now" forecasts of ``requests``: from ``shared`` where it has them,
    computed (on ``inputs()``) for any it does not (in none of the unscheduled states when
    it was made)."""
    known = {r.pk: shared.requests[r.pk] for r in requests if shared and r.pk in shared.requests}
    missing = [r for r in requests if r.pk not in known]
    if missing:
        known.update(forecast_unscheduled(missing, inputs()))
    return known


def campaign_forecasts() -> dict[int, CampaignForecast]:
    """Every open campaign's forecast: the read model's, or computed now when it is off."""
    found = shared()
    return found.campaigns if found is not None else forecast_campaigns()

"""The scheduler's projection as a read model, shared by every page and process.

Why: the forecasts of work with nothing done yet come from the scheduler's projection of
every open campaign (they share capacity and quotas) and, for requests not scheduled
yet, from one projection each "as if scheduled now". Computed per view, that was most of
a monitoring page's cost on a miss (two thirds of the experiment overview's), and every
page of every viewer computed the same thing again.

Now the worker computes it for the current data version (the beat task
``monitoring.refresh_projection``) and stores it in the shared cache, in parts a page
reads separately: every campaign's forecast (one entry), each campaign's decision with
its stages' (one entry per campaign, for the campaign page), each unscheduled request's
forecast (one entry per request). A page reads the parts it shows.

A page that finds no projection for the current version (the version moved since the
worker's last refresh, or a cold cache) computes the campaigns' part, as it did before
the read model, and stores it for the others; the forecasts of its own unscheduled
requests too. It never computes every unscheduled request's (seconds at 440 requests):
that is the worker's.

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache

from common import pagecache
from requests_app.choices import UNSCHEDULED_STATES
from requests_app.models import ProductionRequest

from .. import conf
from ..scheduler import CampaignDecision, StageDecision, decide
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
class Computed:
    """What one computation produced (for the worker's report and the tests)."""

    campaigns: dict[int, CampaignForecast] = field(default_factory=dict)
    decisions: dict[int, tuple[CampaignDecision | None, dict[int, StageDecision]]] = field(
        default_factory=dict
    )
    requests: dict[int, ScheduleForecast] = field(default_factory=dict)
    computed: float = 0.0
    seconds: float = 0.0


def ttl_s() -> int:
    return int(getattr(settings, "OPOS_PROJECTION_S", 0) or 0)


def enabled() -> bool:
    return ttl_s() > 0


def _key(version: int, part: str) -> str:
    return f"{KEY}:{version}:{part}"


class Shared:
    """The projection of one data version, read part by part (each part at most once)."""

    def __init__(self, version: int, campaigns: dict[int, CampaignForecast]) -> None:
        self.version = version
        self.campaigns = campaigns
        self._requests: dict[int, ScheduleForecast] = {}

    def decision(
        self, campaign_id: int
    ) -> tuple[CampaignDecision | None, dict[int, StageDecision]]:
        """The scheduler's decision on a campaign and its stages (why work waits)."""
        found = cache.get(_key(self.version, f"decision:{campaign_id}"))
        if found is None:  # evicted from the cache, or a campaign opened since: project
            found = compute(self.version, requests=False).decisions.get(campaign_id)
        return found if found is not None else (None, {})

    def requests(
        self, requests: Iterable[ProductionRequest], inputs: Callable[[], CycleInputs]
    ) -> dict[int, ScheduleForecast]:
        """The "if scheduled now" forecasts of ``requests``: stored, or computed here (on
        ``inputs()``) and stored for the other pages."""
        requests = [r for r in requests if r.pk not in self._requests]
        if requests:
            keys = {_key(self.version, f"request:{r.pk}"): r.pk for r in requests}
            for key, value in cache.get_many(list(keys)).items():
                self._requests[keys[key]] = value
            missing = [r for r in requests if r.pk not in self._requests]
            if missing:
                made = forecast_unscheduled(missing, inputs())
                self._requests.update(made)
                _store({_key(self.version, f"request:{pk}"): f for pk, f in made.items()})
        return self._requests


def compute(version: int, requests: bool) -> Computed:
    """The projection of the current data (five queries), stored under ``version``; with
    ``requests``, every unscheduled request's forecast too (two more)."""
    start = time.perf_counter()
    inputs = load_inputs(campaign_ids=())  # no stage labels: not shown
    campaigns = forecast_campaigns(inputs)
    decision = decide(inputs.input, "slack", conf.priority_margin_s())
    stages: dict[int, dict[int, StageDecision]] = {}
    for stage_id, stage in decision.stages.items():
        stages.setdefault(stage.campaign_id, {})[stage_id] = stage
    # Every campaign has its entry, one the scheduler could not read too (no decision):
    # a page never finds a gap to fill by projecting again.
    made = Computed(
        campaigns=campaigns,
        decisions={
            pk: (decision.campaigns.get(pk), stages.get(pk, {}))
            for pk in {*campaigns, *decision.campaigns}
        },
    )
    entries: dict[str, Any] = {
        _key(version, f"decision:{pk}"): part for pk, part in made.decisions.items()
    }
    if requests:
        unscheduled = ProductionRequest.objects.filter(
            state__in=sorted(UNSCHEDULED_STATES)
        ).select_related("experiment")
        made.requests = forecast_unscheduled(list(unscheduled), inputs)
        entries.update({_key(version, f"request:{pk}"): f for pk, f in made.requests.items()})
    made.computed = time.time()
    made.seconds = time.perf_counter() - start
    # The campaigns' entry last: it is what says the version's projection is there.
    entries[_key(version, "campaigns")] = (made.computed, campaigns)
    _store(entries)
    return made


def shared() -> Shared | None:
    """The projection of the current data version, at most ``OPOS_PROJECTION_S`` old:
    stored, or its campaigns' part computed now and stored. None when it is off."""
    if not enabled():
        return None
    # The version is read before any data: a projection stored under a version is never
    # computed from data older than it (the bump runs after the commit).
    version = pagecache.data_version()
    found = cache.get(_key(version, "campaigns"))
    if found is not None and time.time() - found[0] < ttl_s():
        return Shared(version, found[1])
    return Shared(version, compute(version, requests=False).campaigns)


def refresh() -> Computed | None:
    """For the worker: the current version's projection, every part of it, unless one
    stored is younger than half ``OPOS_PROJECTION_S`` (so pages find it fresh) and has
    the requests' part. None when there was nothing to do."""
    if not enabled():
        return None
    version = pagecache.data_version()
    found = cache.get_many([_key(version, "campaigns"), _key(version, "requests")])
    stamp = found.get(_key(version, "campaigns"))
    if (
        stamp is not None
        and found.get(_key(version, "requests"))
        and time.time() - stamp[0] < ttl_s() / 2
    ):
        return None
    made = compute(version, requests=True)
    _store({_key(version, "requests"): True})
    return made


def _store(entries: dict[str, Any]) -> None:
    try:
        cache.set_many(entries, timeout=ttl_s())
    except Exception:
        # A cache that refuses is a slower page, not a wrong one.
        log.exception("projection: could not store %d entries", len(entries))


def unscheduled_forecasts(
    requests: list[ProductionRequest],
    found: Shared | None,
    inputs: Callable[[], CycleInputs],
) -> dict[int, ScheduleForecast]:
    """The "if scheduled now" forecasts of ``requests``: from the read model when it is
    on, else computed (on ``inputs()``)."""
    if not requests:
        return {}
    if found is None:
        return forecast_unscheduled(requests, inputs())
    known = found.requests(requests, inputs)
    return {r.pk: known[r.pk] for r in requests if r.pk in known}


def campaign_forecasts() -> dict[int, CampaignForecast]:
    """Every open campaign's forecast: the read model's, or computed now when it is off."""
    found = shared()
    return found.campaigns if found is not None else forecast_campaigns()

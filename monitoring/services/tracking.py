"""Forecasts of many campaigns and requests at once, with a bounded number of queries.

The measured forecast needs, per campaign or request, its counters (one or two
aggregate queries for all of them) and the snapshots that start each throughput
window (one query for all of them). The scheduler's estimate, needed only for
work with nothing done yet, is loaded at most once per page (``Estimates``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from campaigns.choices import OPEN_CAMPAIGN_STATES, CampaignEventKind, CampaignState
from campaigns.models import FAR_FUTURE, Campaign, CampaignEvent, deadline_moment
from campaigns.services import projection
from campaigns.services.blockage import blocked_reason
from campaigns.services.feasibility import (
    CampaignForecast,
    forecast_campaigns,
)
from campaigns.services.planning import CycleInputs, load_inputs
from requests_app.choices import (
    DELIVERED_STATES,
    DROPPED_STATES,
    UNSCHEDULED_STATES,
    RequestState,
)
from requests_app.models import ProductionRequest

from ..choices import STATUS_RISK, ProgressStatus, SnapshotLevel
from . import snapshots
from .forecast import Forecast, Point, forecast, measure
from .progress import Progress

log = logging.getLogger(__name__)

PAUSED, RESUMED, CANCELLED = (
    CampaignEventKind.PAUSED,
    CampaignEventKind.RESUMED,
    CampaignEventKind.CANCELLED,
)
# Requests whose forecast is "if scheduled now" (not in a campaign yet).


class Estimates:
    """The scheduler's projections, loaded on first use and then shared by the page: from
    the read model every page and process shares (``projection``) when it is on."""

    def __init__(self) -> None:
        self._inputs: CycleInputs | None = None
        self._campaigns: dict[int, CampaignForecast] | None = None
        self._shared: projection.Shared | None = None
        self._looked = False

    @property
    def inputs(self) -> CycleInputs:
        if self._inputs is None:
            self._inputs = load_inputs(campaign_ids=())  # no stage labels: not shown
        return self._inputs

    @property
    def shared(self) -> projection.Shared | None:
        if not self._looked:
            self._shared, self._looked = projection.shared(), True
        return self._shared

    def campaign(self, campaign_id: int) -> CampaignForecast | None:
        if self._campaigns is None:
            shared = self.shared
            self._campaigns = shared.campaigns if shared else forecast_campaigns(self.inputs)
        return self._campaigns.get(campaign_id)

    def unscheduled(self, requests: list[ProductionRequest]) -> dict[int, Any]:
        if not requests:
            return {}
        return projection.unscheduled_forecasts(requests, self.shared, lambda: self.inputs)


def hold_seconds(request: ProductionRequest, now: dt.datetime) -> int:
    """Time the request spent on hold, including the hold it is in now."""
    total = int(request.hold_seconds or 0)
    if request.state == RequestState.ON_HOLD and request.hold_started:
        total += max(int((now - request.hold_started).total_seconds()), 0)
    return total


def paused_seconds(campaign: Campaign, now: dt.datetime) -> int:
    """Time the campaign spent paused, from its recorded pause and resume events (one query)."""
    total, since = 0.0, None
    for kind, at in (
        CampaignEvent.objects.filter(campaign=campaign, kind__in=[PAUSED, RESUMED, CANCELLED])
        .order_by("created", "id")
        .values_list("kind", "created")
    ):
        if kind == PAUSED:
            since = since or at
        elif since is not None:
            total += (at - since).total_seconds()
            since = None
    if since is not None and campaign.state == CampaignState.PAUSED:
        total += (now - since).total_seconds()
    return int(total)


def launch_point(campaign: Campaign | None) -> list[Point]:
    """The launch as a point with nothing done: where throughput of young work starts."""
    if campaign is None or campaign.launched_at is None:
        return []
    return [Point(campaign.launched_at, 0, 0)]


def campaign_forecast(
    campaign: Campaign,
    progress: Progress,
    points: list[Point],
    now: dt.datetime,
    estimates: Estimates,
) -> Forecast:
    """A campaign's forecast from its window points (or the scheduler's estimate)."""
    est_finish = est_status = None
    if campaign.state in OPEN_CAMPAIGN_STATES and progress.events_done == 0:
        est = estimates.campaign(campaign.pk)
        if est is not None:
            est_finish, est_status = est.finish, est.status
    return forecast(
        now=now,
        done=progress.events_done,
        target=progress.events_target,
        deadline=campaign.deadline_at,
        rates=measure(points + launch_point(campaign), now, progress.events_done),
        estimate_finish=est_finish,
        estimate_status=est_status,
        on_hold=campaign.state == CampaignState.PAUSED,
        complete=campaign.state == CampaignState.COMPLETED,
        finished_at=campaign.completed_at,
        will_not_run=campaign.state == CampaignState.CANCELLED,
        blocked=_blocked(campaign, progress),
    )


def request_forecast(
    request: ProductionRequest,
    progress: Progress,
    points: list[Point],
    campaign: Campaign | None,
    now: dt.datetime,
    estimates: Estimates,
    unscheduled: dict[int, Any] | None = None,
) -> Forecast:
    """A request's forecast: measured in its campaign, else the scheduler's estimate."""
    est_finish = est_status = None
    if progress.events_done == 0 and request.state not in DELIVERED_STATES | DROPPED_STATES:
        est = None
        if campaign is not None and campaign.state in OPEN_CAMPAIGN_STATES:
            parent = estimates.campaign(campaign.pk)
            est = parent.requests.get(request.pk) if parent else None
        elif campaign is None and unscheduled is not None:
            est = unscheduled.get(request.pk)
        if est is not None:
            est_finish, est_status = est.finish, est.status
    paused = campaign is not None and campaign.state == CampaignState.PAUSED
    return forecast(
        now=now,
        done=progress.events_done,
        target=progress.events_target,
        deadline=deadline_moment(request.deadline),
        rates=measure(points + launch_point(campaign), now, progress.events_done),
        estimate_finish=est_finish,
        estimate_status=est_status,
        on_hold=request.state == RequestState.ON_HOLD or paused,
        complete=request.state in DELIVERED_STATES,
        will_not_run=request.state in DROPPED_STATES
        or (campaign is not None and campaign.state == CampaignState.CANCELLED),
        blocked=_blocked(campaign, progress),
    )


def broken_forecast(day: dt.date, exc: Exception) -> Forecast:
    """The row of work whose forecast raised: marked blocked with the error, the page goes on."""
    log.exception("forecast failed")
    try:
        deadline = deadline_moment(day)
    except Exception:  # the deadline itself may be what is broken
        deadline = FAR_FUTURE
    reason = f"cannot be forecast: {type(exc).__name__}: {exc}"[:500]
    return Forecast(deadline=deadline, status=ProgressStatus.BLOCKED, reason=reason)


def _blocked(campaign: Campaign | None, progress: Progress) -> str:
    """Why work in ``campaign`` is blocked: its recorded fault, its stages that gave up.

    Only while the campaign may still run: a completed or cancelled one is final.
    """
    if campaign is None or campaign.state not in OPEN_CAMPAIGN_STATES:
        return ""
    return blocked_reason(campaign.fault, progress.gave_up)


@dataclass
class Tracked:
    """A row of an overview: a campaign or a request, its progress and forecast."""

    kind: str  # "campaign" or "request"
    obj: Any
    progress: Progress
    forecast: Forecast
    campaign: Campaign | None = None
    hold_s: int = 0
    commitments: list[Any] = field(default_factory=list)  # commitments.attach

    @property
    def worst_commitment(self) -> Any:
        from .commitments import worst  # commitments imports this module

        return worst(self.commitments)

    @property
    def risk_key(self) -> tuple:
        return (STATUS_RISK.get(self.forecast.status, 9), self.forecast.deadline, self.obj.pk)


def track_campaigns(
    campaigns: list[Campaign],
    progress: dict[int, Progress],
    now: dt.datetime,
    estimates: Estimates,
) -> list[Tracked]:
    """Campaign rows with forecasts: one query for the window points of all of them."""
    points = snapshots.window_points(SnapshotLevel.CAMPAIGN, [c.pk for c in campaigns], now)
    rows = []
    for c in campaigns:
        p = progress.get(c.pk, Progress())
        try:
            f = campaign_forecast(c, p, points.get(c.pk, []), now, estimates)
        except Exception as exc:  # one broken row must not take the page down
            f = broken_forecast(c.deadline, exc)
        rows.append(Tracked("campaign", c, p, f))
    return rows


def track_requests(
    requests: list[ProductionRequest],
    progress: dict[int, Progress],
    campaign_of: dict[int, Campaign],
    now: dt.datetime,
    estimates: Estimates,
) -> list[Tracked]:
    """Request rows with forecasts; requests not yet in a campaign get "if scheduled now"."""
    points = snapshots.window_points(
        SnapshotLevel.REQUEST, [r.pk for r in requests if r.pk in campaign_of], now
    )
    waiting = [r for r in requests if r.pk not in campaign_of and r.state in UNSCHEDULED_STATES]
    unscheduled = estimates.unscheduled(waiting)
    rows = []
    for r in requests:
        p = progress.get(r.pk, Progress())
        campaign = campaign_of.get(r.pk)
        try:
            f = request_forecast(r, p, points.get(r.pk, []), campaign, now, estimates, unscheduled)
        except Exception as exc:  # as for campaigns
            f = broken_forecast(r.deadline, exc)
        rows.append(Tracked("request", r, p, f, campaign, hold_seconds(r, now)))
    return rows


def by_risk(rows: Iterable[Tracked]) -> list[Tracked]:
    """Most worrying first: late, at risk, on hold, unknown, on track, done; then deadline."""
    return sorted(rows, key=lambda row: row.risk_key)

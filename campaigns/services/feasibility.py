"""Deadline feasibility: when will a campaign or a request finish at the current load?

The projection runs the scheduler's own order and limits over the remaining
work (``campaigns.scheduler.project``), with walltime estimates that start
from the template and become the observed median once jobs finish. It is
checked before work starts: at approval and at scheduling time an operator
sees "with the current load this would finish around D".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from django.utils import timezone

from experiments.models import StageTemplate
from requests_app.choices import (
    DELIVERED_STATES,
    PRIORITY_WEIGHT,
    TERMINAL_STATES,
)
from requests_app.models import ProductionRequest, Sample

from .. import conf
from ..choices import OPEN_CAMPAIGN_STATES, CampaignState, Feasibility
from ..models import FAR_FUTURE, CampaignRequest, deadline_moment
from ..scheduler import CampaignLoad, StageLoad, feasibility, project, project_each
from .blockage import blocked_reason
from .expansion import stage_job_counts
from .planning import CycleInputs, load_inputs

HYPOTHETICAL = -1  # campaign id of a request not scheduled yet
F = TypeVar("F", bound="ScheduleForecast")


def _when(ts: float | None) -> dt.datetime | None:
    """A projected instant, or None for "never" (also past what a datetime can hold: a
    request of 10^12 one-event jobs projects to a year no page could print)."""
    if ts is None or not ts <= FAR_FUTURE.timestamp():
        return None
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC)


@dataclass
class ScheduleForecast:
    """Projected finish of some work against its deadline, by the scheduler's fluid model
    (the read side's ETA from the observed pace is ``monitoring.services.forecast.Forecast``)."""

    deadline: dt.datetime
    finish: dt.datetime | None  # None: never at the current limits
    status: str  # a Feasibility value
    remaining_jobs: int = 0
    mode: str = "running"  # running | if_launched | if_scheduled | final
    reason: str = ""  # why it is blocked (status ``blocked``)

    @property
    def status_label(self) -> str:
        return Feasibility(self.status).label

    @property
    def badge(self) -> str:
        """CSS badge class of the status."""
        return {
            Feasibility.ON_TRACK: "ok",
            Feasibility.AT_RISK: "warn",
            Feasibility.LATE: "bad",
            Feasibility.DONE: "ok",
            Feasibility.BLOCKED: "bad",
        }.get(self.status, "info")

    @property
    def message(self) -> str:
        if self.status == Feasibility.DONE:
            return "Done."
        if self.status == Feasibility.BLOCKED:
            return f"Blocked, finish unknown: {self.reason}."
        if self.mode == "final":
            return "No forecast: the work will not run."
        if self.finish is None:
            return "It would never finish with the current capacity and quota."
        when = timezone.localtime(self.finish).strftime("%Y-%m-%d %H:%M")
        lead = {
            "if_scheduled": "With the current load this would finish around",
            "if_launched": "If launched now, it would finish around",
        }.get(self.mode, "Projected to finish around")
        day = timezone.localtime(self.deadline - dt.timedelta(seconds=1)).date()
        return f"{lead} {when} ({self.status_label.lower()}; deadline {day})."


@dataclass
class CampaignForecast(ScheduleForecast):
    """A campaign's forecast and its requests' (by request id)."""

    campaign_id: int = 0
    requests: dict[int, ScheduleForecast] = field(default_factory=dict)


def forecast_campaigns(
    inputs: CycleInputs | None = None, only: Iterable[int] | None = None
) -> dict[int, CampaignForecast]:
    """Forecasts of every open campaign (or of those in ``only``) and their requests (the
    four queries of ``load_inputs``).

    Planned and paused campaigns are projected as if they ran from now. The projection
    runs over all of them whatever ``only`` says (they share capacity and quotas).
    """
    inputs = inputs or load_inputs(campaign_ids=())  # no stage labels: not shown
    now = inputs.input.now
    projections = project(inputs.input, "slack", conf.priority_margin_s())
    wanted = None if only is None else set(only)
    result: dict[int, CampaignForecast] = {}
    for load in inputs.input.campaigns:
        if wanted is not None and load.campaign_id not in wanted:
            continue
        proj = projections[load.campaign_id]
        remaining = sum(s.remaining for s in load.stages)
        mode = "running" if load.state == CampaignState.ACTIVE else "if_launched"
        groups: dict[int, list] = {}
        stuck: dict[int, list[tuple[str, int]]] = {}
        for s in load.stages:
            g = groups.setdefault(s.request_id, [s.request_deadline, 0])
            g[1] += s.remaining
            if s.blocked:
                stuck.setdefault(s.request_id, []).append((s.name, s.gave_up))
        fault = inputs.faults.get(load.campaign_id, "")
        requests = {
            gid: _blocked_or(
                blocked_reason(fault, stuck.get(gid, ())),
                ScheduleForecast(
                    deadline=_when(deadline),
                    finish=_when(proj.requests.get(gid)),
                    status=feasibility(now, deadline, proj.requests.get(gid), done=left == 0),
                    remaining_jobs=left,
                    mode=mode,
                ),
            )
            for gid, (deadline, left) in groups.items()
        }
        result[load.campaign_id] = _blocked_or(
            blocked_reason(fault, [pair for pairs in stuck.values() for pair in pairs]),
            CampaignForecast(
                deadline=_when(load.deadline),
                finish=_when(proj.finish),
                status=feasibility(
                    now, load.deadline, proj.finish, done=remaining == 0 and bool(load.stages)
                ),
                remaining_jobs=remaining,
                mode=mode,
                campaign_id=load.campaign_id,
                requests=requests,
            ),
        )
    # Campaigns the scheduler could not read: blocked, with the error (no deadline to trust).
    for campaign_id, exc in inputs.failed.items():
        if wanted is None or campaign_id in wanted:
            result[campaign_id] = CampaignForecast(
                deadline=FAR_FUTURE,
                finish=None,
                status=Feasibility.BLOCKED,
                reason=f"cannot be scheduled: {type(exc).__name__}: {exc}"[:500],
                campaign_id=campaign_id,
            )
    return result


def _blocked_or(reason: str, forecast: F) -> F:
    """``forecast`` as blocked (no finish) when ``reason`` says why, else unchanged.

    Also over "done": the scheduler counts open work only, and blocked work has none.
    """
    if reason:
        forecast.status, forecast.finish, forecast.reason = Feasibility.BLOCKED, None, reason
    return forecast


def forecast_request(
    request: ProductionRequest, inputs: CycleInputs | None = None
) -> ScheduleForecast:
    """When ``request`` would finish, at the current load, against its deadline.

    In an open campaign: its projection there. Not scheduled yet (submitted,
    approved): as if scheduled now into a campaign of its own with the
    request's priority on the experiment's default backend, competing with
    every open campaign. A bounded number of queries.
    """
    deadline = deadline_moment(request.deadline)
    link = (
        CampaignRequest.objects.filter(request=request)
        .select_related("campaign")
        .only("campaign__state", "campaign_id")
    ).first()
    if request.state in DELIVERED_STATES:
        return ScheduleForecast(deadline, None, Feasibility.DONE, mode="final")
    if request.state in TERMINAL_STATES:
        return ScheduleForecast(deadline, None, Feasibility.UNKNOWN, mode="final")
    if link is not None and link.campaign.state in OPEN_CAMPAIGN_STATES:
        campaign = forecast_campaigns(inputs).get(link.campaign_id)
        if campaign is not None and request.pk in campaign.requests:
            return campaign.requests[request.pk]
        return ScheduleForecast(deadline, None, Feasibility.UNKNOWN, mode="final")
    if link is not None:
        return ScheduleForecast(deadline, None, Feasibility.UNKNOWN, mode="final")

    return forecast_unscheduled([request], inputs)[request.pk]


def forecast_unscheduled(
    requests: Iterable[ProductionRequest], inputs: CycleInputs | None = None
) -> dict[int, ScheduleForecast]:
    """ "Would finish around" forecasts of requests not scheduled yet, by request id.

    Each request is projected alone on top of the current load, as if
    scheduled now into a campaign of its own with the request's priority on
    the experiment's default backend. Two queries for the whole list (plus
    ``load_inputs`` when no inputs are given).
    """
    requests = list(requests)
    if not requests:
        return {}
    inputs = inputs or load_inputs(campaign_ids=())  # no stage labels: not shown
    samples_of: dict[int, list[Sample]] = {}
    for sample in Sample.objects.filter(request__in=requests):
        samples_of.setdefault(sample.request_id, []).append(sample)
    template_ids = {s.template_id for samples in samples_of.values() for s in samples}
    stages_of: dict[int, list[StageTemplate]] = {}
    for st in StageTemplate.objects.filter(template__in=template_ids):
        stages_of.setdefault(st.template_id, []).append(st)
    hypotheticals = []
    for request in requests:
        deadline = deadline_moment(request.deadline)
        loads: list[StageLoad] = []
        for sample in samples_of.get(request.pk, []):
            stages = stages_of.get(sample.template_id, [])
            counts = stage_job_counts(sample, stages)
            loads += [
                StageLoad(
                    stage_id=-(len(loads) + n + 1),
                    campaign_id=HYPOTHETICAL,
                    position=st.position,
                    ready=counts[st.id],
                    planned=0,
                    in_flight=0,
                    walltime_s=float(st.walltime_s),
                    request_id=request.pk,
                    request_deadline=deadline.timestamp(),
                )
                for n, st in enumerate(stages)
            ]
        hypotheticals.append(
            CampaignLoad(
                campaign_id=HYPOTHETICAL,
                experiment_id=request.experiment_id,
                backend=request.experiment.default_backend,
                state=CampaignState.ACTIVE,
                priority=PRIORITY_WEIGHT.get(request.priority, 1),
                deadline=deadline.timestamp(),
                stages=tuple(loads),
                arrival=inputs.input.now,
            )
        )
    # Each request alone on top of the current load (they do not compete with each
    # other): the base campaigns are set up once for all of them.
    projections = project_each(inputs.input, hypotheticals, "slack", conf.priority_margin_s())
    result = {}
    for request, hypothetical, proj in zip(requests, hypotheticals, projections, strict=True):
        result[request.pk] = ScheduleForecast(
            deadline=deadline_moment(request.deadline),
            finish=_when(proj.finish),
            status=feasibility(inputs.input.now, hypothetical.deadline, proj.finish),
            remaining_jobs=sum(s.remaining for s in hypothetical.stages),
            mode="if_scheduled",
        )
    return result

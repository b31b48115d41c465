"""What a campaign's plan page and ``/plan/`` endpoint show, assembled with bounded queries.

Counts come from the stage counters; "why waiting" and the projected finish
come from one ``load_inputs`` (four queries), whatever the size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import F, QuerySet, Sum

from requests_app.choices import RequestState
from requests_app.models import ProductionRequest

from .. import conf
from ..choices import (
    ACTIVE_JOB_STATES,
    OPEN_CAMPAIGN_STATES,
    CampaignState,
    Feasibility,
    JobState,
    WaitReason,
)
from ..models import COUNTER_FOR_STATE, RETRIED_COUNTER_FOR_STATE, Campaign, CampaignRequest, Stage
from ..scheduler import CampaignDecision, StageDecision, decide
from . import projection
from .feasibility import CampaignForecast, ScheduleForecast, forecast_campaigns
from .planning import CycleInputs, load_inputs


@dataclass
class StageRow:
    """One planned stage with its counters and this cycle's decision."""

    stage: Stage
    decision: StageDecision | None = None

    @property
    def counts(self) -> dict[str, int]:
        return self.stage.counts()

    @property
    def submit_now(self) -> int:
        return self.decision.submit if self.decision else 0

    @property
    def reason(self) -> str | None:
        return self.decision.reason if self.decision else None

    @property
    def reason_label(self) -> str:
        return WaitReason(self.reason).label if self.reason else ""

    @property
    def detail(self) -> str:
        return self.decision.detail if self.decision else ""

    @property
    def progress(self) -> int:
        total = self.stage.jobs_total
        return round(100 * self.stage.n_succeeded / total) if total else 0


@dataclass
class RequestRow:
    """A request of the campaign, its stages and its forecast."""

    request: ProductionRequest
    stages: list[StageRow] = field(default_factory=list)
    forecast: ScheduleForecast | None = None

    @property
    def removable(self) -> bool:
        """Not started: scheduled, and no job of it ever left the waiting states."""
        started = sum(
            getattr(row.stage, COUNTER_FOR_STATE[s])
            for row in self.stages
            for s in JobState.values
            if s not in (JobState.PLANNED, JobState.READY)
        )
        return self.request.state == RequestState.SCHEDULED and started == 0


@dataclass
class CampaignPlan:
    """Everything the plan page and the plan endpoint show about one campaign."""

    campaign: Campaign
    requests: list[RequestRow]
    stages: list[StageRow]
    forecast: ScheduleForecast | None
    decision: CampaignDecision | None
    counts: dict[str, int]
    inputs: CycleInputs | None = None  # what the decision was made from (reuse for forecasts)
    shared: projection.Shared | None = None  # or the read model it came from

    @property
    def jobs_total(self) -> int:
        return sum(row.stage.jobs_total for row in self.stages)

    @property
    def in_flight(self) -> int:
        return sum(self.counts[s] for s in ACTIVE_JOB_STATES)

    @property
    def progress(self) -> int:
        total = self.jobs_total
        return round(100 * self.counts[JobState.SUCCEEDED] / total) if total else 0

    @property
    def waiting(self) -> list[StageRow]:
        return [row for row in self.stages if row.reason]


def campaign_plan(campaign: Campaign) -> CampaignPlan:
    """Assemble the plan of ``campaign``: seven queries for any size (two when closed)."""
    stages = list(
        Stage.objects.filter(campaign=campaign)
        .select_related("sample")
        .order_by("request_id", "sample_id", "position")
    )
    links = list(
        CampaignRequest.objects.filter(campaign=campaign)
        .select_related("request", "request__physics_group")
        .order_by("request__deadline", "request_id")
    )
    decisions: dict[int, StageDecision] = {}
    forecast: ScheduleForecast | None = None
    summary = None
    inputs = None
    forecasts: dict[int, ScheduleForecast] = {}
    shared = projection.shared() if campaign.state in OPEN_CAMPAIGN_STATES else None
    if shared is not None:
        # The read model every page shares (projection.py): nothing projected here.
        summary, decisions = shared.decision(campaign.pk)
        forecast = shared.campaigns.get(campaign.pk)
        if isinstance(forecast, CampaignForecast):
            forecasts = forecast.requests
    elif campaign.state in OPEN_CAMPAIGN_STATES:
        inputs = load_inputs(campaign_ids=[campaign.pk])
        decision = decide(inputs.input, "slack", conf.priority_margin_s())
        decisions = decision.stages
        summary = decision.campaigns.get(campaign.pk)
        forecast = forecast_campaigns(inputs, only=[campaign.pk]).get(campaign.pk)
        if isinstance(forecast, CampaignForecast):
            forecasts = forecast.requests
    else:
        status = (
            Feasibility.DONE if campaign.state == CampaignState.COMPLETED else Feasibility.UNKNOWN
        )
        forecast = ScheduleForecast(
            campaign.deadline_at, campaign.completed_at, status, mode="final"
        )
    rows = [StageRow(s, decisions.get(s.pk)) for s in stages]
    by_request: dict[int, list[StageRow]] = {}
    for row in rows:
        by_request.setdefault(row.stage.request_id, []).append(row)
    # Jobs by the state of their latest attempt (a retried failure is not a failed job).
    counts = dict.fromkeys(COUNTER_FOR_STATE, 0)
    for s in stages:
        for state, n in s.counts().items():
            counts[state] += n
    return CampaignPlan(
        campaign=campaign,
        requests=[
            RequestRow(
                link.request, by_request.get(link.request_id, []), forecasts.get(link.request_id)
            )
            for link in links
        ],
        stages=rows,
        forecast=forecast,
        decision=summary,
        counts=counts,
        inputs=inputs,
        shared=shared,
    )


def with_counts(queryset: QuerySet[Campaign]) -> QuerySet[Campaign]:
    """Campaigns annotated with their jobs by state (``jobs_<state>``) and ``jobs_total``,
    summed from the stage counters in the same query."""
    sums = {
        f"jobs_{state}": Sum(f"stages__{column}") for state, column in COUNTER_FOR_STATE.items()
    }
    # Jobs, not attempts: less the attempts another attempt replaced.
    for state, column in RETRIED_COUNTER_FOR_STATE.items():
        sums[f"jobs_{state}"] = Sum(F(f"stages__{COUNTER_FOR_STATE[state]}")) - Sum(
            F(f"stages__{column}")
        )
    return queryset.annotate(jobs_total=Sum("stages__jobs_total"), **sums)

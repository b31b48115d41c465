"""Partial completion: an operator force-completes a request or a campaign that reached its
completion threshold, abandoning the rest with a reason.

The threshold is the campaign's ``completion_pct`` when set, else the strictest default of
the workflow templates involved (``WorkflowTemplate.completion_pct``). What counts as done
is the share of the final stages' jobs (those no other stage reads) whose latest attempt
succeeded: the output the requester gets. The rest is abandoned through the cancel path:
jobs not yet submitted are cancelled at once, those at the batch system are cancelled by
execution (``cancel_pending`` on the request's link, or on the campaign). The request
moves to completed (its requester is emailed, the ticket gets a work note saying what is
missing), the link keeps what was abandoned and why, for the dashboards, the catalogue
and the reports.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from requests_app.choices import FINISHED_STATES, IN_CAMPAIGN_STATES, RequestState
from requests_app.models import ProductionRequest, Sample
from requests_app.services import TransitionError, system_transition
from requests_app.services.requests import post_system_notes

from ..choices import (
    ACTIVE_JOB_STATES,
    WAITING_JOB_STATES,
    CampaignEventKind,
    CampaignState,
    JobState,
)
from ..models import Campaign, CampaignEvent, CampaignRequest, Job, Stage
from .errors import CampaignError, require_operator
from .planning import recount_stages

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

FORCEABLE_CAMPAIGN_STATES = (CampaignState.ACTIVE, CampaignState.PAUSED)


@dataclass
class Done:
    """Jobs of the final stages: done (latest attempt succeeded) of total, per sample too."""

    done: int = 0
    total: int = 0
    samples: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    def missing(self) -> list[str]:
        """Which part is missing, per sample, in words."""
        return [
            f"{name}: {total - done} of {total} jobs not done"
            for name, (done, total) in sorted(self.samples.items())
            if done < total
        ]


@dataclass
class CompletionResult:
    campaign: Campaign
    requests: list[str] = field(default_factory=list)
    percent: float = 100.0
    threshold: int = 100
    cancelled_jobs: int = 0


def progress_of(campaign_id: int, request_ids: list[int] | None = None) -> dict[int, Done]:
    """``{request id: Done}`` from the stage counters (one query)."""
    stages = list(
        Stage.objects.filter(campaign_id=campaign_id, **_only(request_ids)).values(
            "id",
            "request_id",
            "sample__name",
            "input_stage_id",
            "jobs_total",
            "n_succeeded",
            "retried_succeeded",
        )
    )
    feeding = {s["input_stage_id"] for s in stages if s["input_stage_id"]}
    result: dict[int, Done] = defaultdict(Done)
    for s in stages:
        if s["id"] in feeding:
            continue
        done = min(max(s["n_succeeded"] - s["retried_succeeded"], 0), s["jobs_total"])
        entry = result[s["request_id"]]
        entry.done += done
        entry.total += s["jobs_total"]
        old_done, old_total = entry.samples.get(s["sample__name"], (0, 0))
        entry.samples[s["sample__name"]] = (old_done + done, old_total + s["jobs_total"])
    return dict(result)


def _only(request_ids: list[int] | None) -> dict[str, Any]:
    return {} if request_ids is None else {"request_id__in": request_ids}


def threshold_of(campaign: Campaign, request_ids: list[int]) -> tuple[int, str]:
    """The threshold in percent, and where it comes from (for the refusal and the record)."""
    if campaign.completion_pct:
        return campaign.completion_pct, "the campaign's setting"
    strictest = Sample.objects.filter(request_id__in=request_ids).aggregate(
        top=Max("template__completion_pct")
    )["top"]
    return int(strictest or 100), "the workflow templates' default"


def force_complete_request(
    request: ProductionRequest | int, user: AbstractBaseUser, reason: str
) -> CompletionResult:
    """Complete a running request whose final jobs reached the threshold; abandon the rest."""
    require_operator(user, "force-complete requests")
    request_id = request if isinstance(request, int) else request.pk
    reason = _reason(reason)
    link = CampaignRequest.objects.filter(request_id=request_id).first()
    if link is None:
        raise CampaignError(
            "The request is in no campaign: nothing ran to complete.",
            ["request: schedule it into a campaign, or cancel it"],
            kind="conflict",
        )
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=link.campaign_id)
        _check_campaign(campaign)
        number, state = ProductionRequest.objects.values_list("number", "state").get(pk=request_id)
        if state not in IN_CAMPAIGN_STATES:
            raise CampaignError(
                f"Cannot force-complete {number}: it is {state.replace('_', ' ')}.",
                ["force-complete needs the state: scheduled or in production"],
                kind="conflict",
            )
        done = progress_of(campaign.pk, [request_id]).get(request_id, Done())
        threshold, source = threshold_of(campaign, [request_id])
        _check_threshold(number, done, threshold, source)
        cancelled = _abandon(campaign, [request_id], {request_id: done}, reason, user)
        _record(campaign, user, reason, done, threshold, request_id, number, cancelled)
        _complete_campaign_when_all_done(campaign, user, reason)
    return CompletionResult(campaign, [number], done.percent, threshold, cancelled)


def force_complete_campaign(
    campaign: Campaign | int, user: AbstractBaseUser, reason: str
) -> CompletionResult:
    """Complete an active or paused campaign whose final jobs reached the threshold: every
    running request of it is force-completed, the rest of the work abandoned."""
    require_operator(user, "force-complete campaigns")
    reason = _reason(reason)
    campaign_id = campaign if isinstance(campaign, int) else campaign.pk
    with transaction.atomic():
        current = Campaign.objects.select_for_update().get(pk=campaign_id)
        _check_campaign(current)
        requests = list(
            ProductionRequest.objects.filter(campaign_link__campaign=current).values_list(
                "pk", "number", "state"
            )
        )
        held = [n for _pk, n, s in requests if s == RequestState.ON_HOLD]
        if held:
            raise CampaignError(
                "Requests of the campaign are on hold.",
                [f"{n}: on hold; resume or cancel it first" for n in held],
                kind="conflict",
            )
        running = [(pk, n) for pk, n, s in requests if s in IN_CAMPAIGN_STATES]
        counted = [pk for pk, _n, s in requests if s != RequestState.CANCELLED]
        progress = progress_of(current.pk, counted)
        total = Done()
        for entry in progress.values():
            total.done += entry.done
            total.total += entry.total
        threshold, source = threshold_of(current, counted)
        _check_threshold(current.name, total, threshold, source)
        cancelled = _abandon(current, [pk for pk, _n in running], progress, reason, user)
        # What is left of requests not running (cancelled ones) stops too.
        stage_ids = list(Stage.objects.filter(campaign=current).values_list("id", flat=True))
        now = timezone.now()
        cancelled += Job.objects.filter(
            stage_id__in=stage_ids, state__in=sorted(WAITING_JOB_STATES)
        ).update(state=JobState.CANCELLED, state_since=now, finished=now)
        recount_stages(stage_ids)
        in_flight = Job.objects.filter(
            stage_id__in=stage_ids, state__in=sorted(ACTIVE_JOB_STATES)
        ).exists()
        Campaign.objects.filter(pk=current.pk).update(
            state=CampaignState.COMPLETED,
            completed_at=now,
            updated=now,
            cancel_pending=in_flight or current.cancel_pending,
        )
        CampaignEvent.objects.create(
            campaign=current,
            kind=CampaignEventKind.FORCE_COMPLETED,
            actor=user,
            reason=reason,
            changes={
                "state": [current.state, CampaignState.COMPLETED],
                "done_pct": [None, round(total.percent, 2)],
                "threshold_pct": [None, threshold],
                "abandoned_jobs": [None, total.total - total.done],
                "requests": [None, [n for _pk, n in running]],
            },
        )
    return CompletionResult(current, [n for _pk, n in running], total.percent, threshold, cancelled)


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise CampaignError(
            "A reason is required to force-complete.",
            ["reason: say why the rest is abandoned; it is recorded and sent to the requester"],
            kind="invalid",
        )
    if len(reason) > 5000:
        raise CampaignError("The reason is too long.", ["reason: at most 5000 characters"])
    return reason


def _check_campaign(campaign: Campaign) -> None:
    if campaign.state not in FORCEABLE_CAMPAIGN_STATES:
        raise CampaignError(
            f"Cannot force-complete: the campaign is {campaign.state}.",
            ["force-complete needs the campaign's state: active or paused"],
            kind="conflict",
        )


def _check_threshold(what: str, done: Done, threshold: int, source: str) -> None:
    if done.total and done.percent + 1e-9 >= threshold:
        return
    raise CampaignError(
        f"{what} has not reached its completion threshold.",
        [
            f"done: {done.percent:.1f} % of the final jobs ({done.done} of {done.total}); "
            f"the threshold is {threshold} % ({source})"
        ],
        kind="conflict",
    )


def _abandon(
    campaign: Campaign,
    request_ids: list[int],
    progress: dict[int, Done],
    reason: str,
    user: AbstractBaseUser,
) -> int:
    """Cancel the requests' work not yet done, move them to completed, tell the requesters."""
    if not request_ids:
        return 0
    stage_ids = list(
        Stage.objects.filter(campaign=campaign, request_id__in=request_ids).values_list(
            "id", flat=True
        )
    )
    now = timezone.now()
    cancelled = Job.objects.filter(
        stage_id__in=stage_ids, state__in=sorted(WAITING_JOB_STATES)
    ).update(state=JobState.CANCELLED, state_since=now, finished=now)
    recount_stages(stage_ids)
    flying = set(
        Job.objects.filter(stage_id__in=stage_ids, state__in=sorted(ACTIVE_JOB_STATES))
        .values_list("stage__request_id", flat=True)
        .distinct()
    )
    notes = {}
    for request_id in request_ids:
        done = progress.get(request_id, Done())
        CampaignRequest.objects.filter(campaign=campaign, request_id=request_id).update(
            abandoned_at=now,
            abandon_reason=reason,
            abandoned_jobs=done.total - done.done,
            done_pct=round(done.percent, 2),
            cancel_pending=request_id in flying,
        )
        missing = "; ".join(done.missing()) or "nothing"
        note = (
            f"Completed with {done.percent:.1f} % of its final jobs done "
            f"({done.done} of {done.total}); the rest is abandoned. Missing: {missing}. "
            f"Reason: {reason}"
        )
        try:
            system_transition(request_id, "complete", note=note[:5000], actor=user)
        except TransitionError as exc:
            raise CampaignError(exc.detail, exc.reasons, kind="conflict") from exc
        notes[request_id] = note
    post_system_notes(notes)
    return cancelled


def _record(
    campaign: Campaign,
    user: AbstractBaseUser,
    reason: str,
    done: Done,
    threshold: int,
    request_id: int,
    number: str,
    cancelled: int,
) -> None:
    CampaignEvent.objects.create(
        campaign=campaign,
        kind=CampaignEventKind.FORCE_COMPLETED,
        actor=user,
        reason=reason,
        request_id=request_id,
        changes={
            "request": [number, RequestState.COMPLETED],
            "done_pct": [None, round(done.percent, 2)],
            "threshold_pct": [None, threshold],
            "abandoned_jobs": [None, done.total - done.done],
            "cancelled_jobs": [None, cancelled],
        },
    )


def _complete_campaign_when_all_done(
    campaign: Campaign, user: AbstractBaseUser, reason: str
) -> None:
    """The last running request of the campaign was force-completed: the campaign is done."""
    if (
        campaign.state not in FORCEABLE_CAMPAIGN_STATES
        or CampaignRequest.objects.filter(campaign=campaign)
        .exclude(request__state__in=FINISHED_STATES)
        .exists()
    ):
        return
    stage_ids = Stage.objects.filter(campaign=campaign).values("id")
    now = timezone.now()
    in_flight = Job.objects.filter(stage_id__in=stage_ids, state__in=sorted(ACTIVE_JOB_STATES))
    Campaign.objects.filter(pk=campaign.pk, state=campaign.state).update(
        state=CampaignState.COMPLETED,
        completed_at=now,
        updated=now,
        cancel_pending=in_flight.exists() or campaign.cancel_pending,
    )
    # The campaign's flag now cancels everything in flight: the links' would do it twice.
    CampaignRequest.objects.filter(campaign=campaign).update(cancel_pending=False)
    CampaignEvent.objects.create(
        campaign=campaign,
        kind=CampaignEventKind.COMPLETED,
        actor=user,
        reason=f"every request completed (the last one partially): {reason}"[:5000],
        changes={"state": [campaign.state, CampaignState.COMPLETED]},
    )


def abandoned_parts(request_ids: list[int]) -> dict[int, dict[str, Any]]:
    """What was abandoned of each force-completed request (one query), for the pages."""
    return {
        row["request_id"]: row
        for row in CampaignRequest.objects.filter(
            request_id__in=request_ids, abandoned_at__isnull=False
        ).values("request_id", "abandoned_at", "abandon_reason", "abandoned_jobs", "done_pct")
    }

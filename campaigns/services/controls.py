"""What an operator's change means for jobs already queued at the batch system.

A pause holds the campaign's queued jobs, a resume releases them, a priority change (of the
campaign or of one of its requests) re-prioritises them, a new partition, account or QOS
(of the campaign or of its experiment) moves those that have not started. Each is written
as one ``BatchControl`` row per job, in the caller's transaction, next to the audit record
that asked for it; execution sends them on its next cycle and records each job's answer.

Also here, since submission needs the same answers: where a campaign's work runs
(``placement_of``) and the priority level of a request's jobs (``priority_level``).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from experiments import endpoints
from experiments.models import Experiment
from experiments.models.experiments import split_names
from requests_app.choices import PRIORITY_WEIGHT

from ..batch import Placement
from ..choices import OPEN_CAMPAIGN_STATES, CampaignEventKind, JobState
from ..models import (
    BatchControl,
    Campaign,
    CampaignEvent,
    CampaignRequest,
    ControlAction,
    ControlState,
    Job,
)

# Jobs a control can still change: at the batch system, not started.
QUEUED = (JobState.QUEUED, JobState.HELD)
PLACEMENT_FIELDS = ("batch_partition", "batch_account", "batch_qos", "batch_requirements")
# Controls one change replaces: a resume cancels a hold not yet sent, and so on.
REPLACES = {
    ControlAction.HOLD: (ControlAction.HOLD, ControlAction.RELEASE),
    ControlAction.RELEASE: (ControlAction.HOLD, ControlAction.RELEASE),
    ControlAction.PRIORITY: (ControlAction.PRIORITY,),
    ControlAction.MOVE: (ControlAction.MOVE,),
}


def _site_default(backend: str, name: str) -> str | None:
    # The endpoint's own options: a named endpoint never inherits its kind's placement.
    found = endpoints.endpoints().get(backend)
    value = found.options.get(name) if found else None
    return str(value) if value else None


def placement_of(campaign: Campaign, backend: str | None = None) -> Placement:
    """Where ``campaign``'s work runs: its own settings, else its experiment's, else the
    site's (``OPOS_BACKEND_OPTIONS`` of ``backend``, by default the campaign's:
    ``partition``, ``account``, ``qos``, ``requirements``)."""
    experiment = campaign.experiment
    backend = backend or campaign.backend

    def pick(field: str, option: str) -> str | None:
        return (
            getattr(campaign, field) or getattr(experiment, field) or _site_default(backend, option)
        )

    return Placement(
        partition=pick("batch_partition", "partition"),
        account=pick("batch_account", "account"),
        qos=pick("batch_qos", "qos"),
        avoid_partitions=tuple(split_names(experiment.batch_avoid_partitions)),
        requirements=pick("batch_requirements", "requirements"),
    )


def placement_problems(campaign_values: dict, experiment: Experiment) -> list[str]:
    """A campaign's partition may not be one its experiment's work must avoid."""
    partition = campaign_values.get("batch_partition") or ""
    if partition and partition in experiment.avoided_partitions:
        return [
            f"batch_partition: {partition!r} is a partition {experiment.slug}'s work must "
            f"avoid ({experiment.batch_avoid_partitions})"
        ]
    return []


def priority_level(campaign_priority: str, request_priority: str) -> int:
    """The batch priority of a request's jobs: the higher of its own and its campaign's."""
    return max(PRIORITY_WEIGHT.get(campaign_priority, 1), PRIORITY_WEIGHT.get(request_priority, 1))


def queue(
    campaign_id: int,
    event: CampaignEvent | None,
    action: str,
    values_by_job: dict[int, object] | Iterable[int],
) -> int:
    """Write one pending control per job (replacing those of the same kind not yet sent)."""
    if not isinstance(values_by_job, dict):
        values_by_job = {job_id: {} for job_id in values_by_job}
    if not values_by_job:
        return 0
    ids = sorted(values_by_job)
    BatchControl.objects.filter(
        job_id__in=ids, state=ControlState.PENDING, action__in=REPLACES[action]
    ).update(state=ControlState.SUPERSEDED)
    BatchControl.objects.bulk_create(
        BatchControl(
            campaign_id=campaign_id,
            job_id=job_id,
            event=event,
            action=action,
            value=values_by_job[job_id],
        )
        for job_id in ids
    )
    return len(ids)


def _queued_jobs(campaign_id: int, states=QUEUED):
    return Job.objects.filter(stage__campaign_id=campaign_id, state__in=states).exclude(batch_id="")


def on_pause(event: CampaignEvent) -> int:
    """Hold what the campaign has queued (running jobs finish; nothing new is submitted)."""
    ids = _queued_jobs(event.campaign_id, (JobState.QUEUED,)).values_list("id", flat=True)
    return queue(event.campaign_id, event, ControlAction.HOLD, list(ids))


def on_resume(event: CampaignEvent) -> int:
    """Release what the pause held (and jobs whose hold was never sent)."""
    ids = _queued_jobs(event.campaign_id).values_list("id", flat=True)
    return queue(event.campaign_id, event, ControlAction.RELEASE, list(ids))


def on_priority(
    campaign_id: int, event: CampaignEvent | None, request_id: int | None = None
) -> int:
    """Give the campaign's queued jobs (of one request, if given) their new level."""
    jobs = _queued_jobs(campaign_id)
    if request_id is not None:
        jobs = jobs.filter(stage__request_id=request_id)
    rows = jobs.values_list("id", "stage__campaign__priority", "stage__request__priority")
    return queue(
        campaign_id,
        event,
        ControlAction.PRIORITY,
        {pk: {"level": priority_level(cp, rp)} for pk, cp, rp in rows},
    )


def on_placement(event: CampaignEvent, campaign: Campaign) -> int:
    """Move the campaign's jobs that have not started to where its work now runs."""
    placement = placement_of(campaign)
    value = {
        "partition": placement.partition,
        "account": placement.account,
        "qos": placement.qos,
        "avoid_partitions": list(placement.avoid_partitions),
        "requirements": placement.requirements,
    }
    ids = _queued_jobs(campaign.pk).values_list("id", flat=True)
    return queue(campaign.pk, event, ControlAction.MOVE, {job_id: value for job_id in ids})


def has_queued_jobs(campaign_ids: Iterable[int]) -> set[int]:
    """The campaigns among ``campaign_ids`` with jobs a control could still change."""
    return set(
        Job.objects.filter(stage__campaign_id__in=list(campaign_ids), state__in=QUEUED)
        .exclude(batch_id="")
        .values_list("stage__campaign_id", flat=True)
        .distinct()
    )


def summary(campaign_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """Per campaign, the controls still pending and those that failed (one query)."""
    out: dict[int, dict[str, int]] = {}
    rows = (
        BatchControl.objects.filter(
            Q(state=ControlState.PENDING) | Q(state=ControlState.FAILED),
            campaign_id__in=list(campaign_ids),
        )
        .values_list("campaign_id", "state")
        .annotate(n=Count("id"))
        .order_by()
    )
    for campaign_id, state, n in rows:
        out.setdefault(campaign_id, {"pending": 0, "failed": 0})[state] = n
    return out


def on_request_priority(request_id: int) -> int:
    """A request's priority changed (recorded in its own history): its queued jobs follow."""
    link = CampaignRequest.objects.filter(request_id=request_id).values_list(
        "campaign_id", flat=True
    )
    campaign_id = next(iter(link), None)
    if campaign_id is None:
        return 0
    return on_priority(campaign_id, None, request_id)


def on_experiment_placement(experiment: Experiment, actor, changes: dict) -> int:
    """The experiment's partition, account, QOS, requirements or avoided partitions changed:
    each open campaign records it and moves its jobs that have not started."""
    moved = 0
    campaigns = list(
        Campaign.objects.filter(
            experiment=experiment, state__in=sorted(OPEN_CAMPAIGN_STATES)
        ).select_related("experiment")
    )
    events = CampaignEvent.objects.bulk_create(
        CampaignEvent(
            campaign=campaign,
            kind=CampaignEventKind.EDITED,
            actor=actor,
            reason="the experiment's batch placement changed",
            changes={f"experiment {name}": value for name, value in changes.items()},
        )
        for campaign in campaigns
    )
    # One query per campaign that has jobs to move (an experiment has a handful open).
    with_jobs = has_queued_jobs(c.pk for c in campaigns)
    for campaign, event in zip(campaigns, events, strict=True):
        if campaign.pk in with_jobs:
            moved += on_placement(event, campaign)
    return moved


def request_priority_receiver(sender, request_id: int, **_) -> None:
    on_request_priority(request_id)


def experiment_placement_receiver(sender, experiment: Experiment, actor, changes, **_) -> None:
    on_experiment_placement(experiment, actor, changes)


def with_control_counts(queryset):
    """Campaigns annotated with ``controls_pending`` and ``controls_failed`` (subqueries in
    the same query, so a page of campaigns costs nothing more)."""

    def count(state: str):
        rows = (
            BatchControl.objects.filter(campaign=OuterRef("pk"), state=state)
            .order_by()
            .values("campaign")
            .annotate(n=Count("id"))
            .values("n")[:1]
        )
        return Coalesce(Subquery(rows), 0)

    return queryset.annotate(
        controls_pending=count(ControlState.PENDING), controls_failed=count(ControlState.FAILED)
    )

"""Campaign use cases: create, edit (with reasons), launch/pause/resume/cancel, remove requests.

Every state change is a compare-and-set on the campaign row inside a
transaction that first locks it, so two operators acting at once cannot
both win (the lock where the database has row locks, the compare-and-set
on SQLite, which ignores ``select_for_update``). Every action and every
edit is recorded as a ``CampaignEvent``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from common import limits
from common.decisions import Effect
from experiments import endpoints
from experiments.models import Experiment
from requests_app.choices import Priority, RequestState
from requests_app.models import ProductionRequest
from requests_app.services import TransitionError, system_transition

from ..choices import (
    ACTIVE_JOB_STATES,
    OPEN_CAMPAIGN_STATES,
    OPEN_JOB_STATES,
    WAITING_JOB_STATES,
    CampaignEventKind,
    CampaignState,
    JobState,
    LaunchPhase,
    SubmissionState,
)
from ..extensions import effect_at_decision
from ..models import Campaign, CampaignEvent, CampaignRequest, Dataset, Job, Stage, Submission
from ..workflow import CAMPAIGN_ACTIONS, OPERATOR_ACTIONS
from . import controls
from .errors import CampaignError, require_operator
from .planning import recount_stages

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

PLACEMENT_FIELDS = controls.PLACEMENT_FIELDS
EDITABLE_FIELDS = (
    "name",
    "description",
    "priority",
    "deadline",
    "throttle",
    "backend",
    *PLACEMENT_FIELDS,
)
# Jobs in flight a throttle may allow (beyond it the column overflows; no backend has more).
MAX_THROTTLE = 1_000_000
# Changes the collaboration cares about: they need a reason on record.
REASONED_FIELDS = ("priority", "deadline")


def _clean_fields(
    values: dict[str, Any], experiment: Experiment | None, current: Campaign | None = None
) -> tuple[dict, list[str]]:
    """Validate campaign fields; return the cleaned values and the problems (field first).

    An unchanged deadline is not refused for being out of bounds: an edit of
    another field of a late campaign must still go through.
    """
    cleaned: dict[str, Any] = {}
    problems: list[str] = []
    if "name" in values:
        name = (values["name"] or "").strip()
        if not name or len(name) > 120:
            problems.append("name: required, at most 120 characters")
        cleaned["name"] = name
    if "description" in values:
        text = values["description"] or ""
        if len(text) > 5000:
            problems.append("description: at most 5000 characters")
        cleaned["description"] = text
    if "deadline" in values:
        deadline = values["deadline"]
        if isinstance(deadline, str):
            try:
                deadline = dt.date.fromisoformat(deadline)
            except ValueError:
                deadline = None
        if not isinstance(deadline, dt.date):
            problems.append("deadline: a date (YYYY-MM-DD) is required")
        elif not (current and deadline == current.deadline):
            # A closed campaign's deadline is history: an operator repairing a bad one
            # may set the day it really had, past or not, but never beyond the horizon.
            closed = current is not None and current.state not in OPEN_CAMPAIGN_STATES
            if problem := limits.deadline_problem(deadline, allow_past=closed):
                problems.append(f"deadline: {problem}")
        cleaned["deadline"] = deadline
    if "priority" in values:
        if values["priority"] not in Priority.values:
            problems.append(f"priority: choose one of {', '.join(Priority.values)}")
        cleaned["priority"] = values["priority"]
    if "throttle" in values:
        throttle = values["throttle"]
        if throttle in ("", None):
            throttle = None
        else:
            try:
                throttle = int(throttle)
                if not 0 < throttle <= MAX_THROTTLE:
                    raise ValueError
            except (TypeError, ValueError, OverflowError):
                problems.append(
                    f"throttle: a whole number from 1 to {MAX_THROTTLE}, or empty for no limit"
                )
        cleaned["throttle"] = throttle
    if "backend" in values:
        backend = values["backend"] or (experiment.default_backend if experiment else "")
        problem = endpoints.endpoint_problem(backend)
        if problem:
            problems.append(f"backend: {problem}")
        cleaned["backend"] = backend
    for name in PLACEMENT_FIELDS:
        if name in values:
            value = (values[name] or "").strip()
            field = Campaign._meta.get_field(name)
            try:
                field.clean(value, None)
            except ValidationError as exc:
                problems.append(f"{name}: {' '.join(exc.messages)}")
            cleaned[name] = value
    if experiment is not None:
        problems += controls.placement_problems(cleaned, experiment)
    return cleaned, problems


def _lock(campaign_id: int) -> Campaign:
    """The campaign row, locked until the transaction ends (where the database can).

    Two operators acting at once queue here on PostgreSQL; the compare-and-set
    on ``state`` that follows is what holds on SQLite.
    """
    return Campaign.objects.select_for_update().get(pk=campaign_id)


def _record(
    campaign: Campaign,
    kind: str,
    actor: AbstractBaseUser | None,
    reason: str = "",
    changes: dict | None = None,
    request_id: int | None = None,
) -> CampaignEvent:
    return CampaignEvent.objects.create(
        campaign=campaign,
        kind=kind,
        actor=actor,
        reason=reason or "",
        changes=changes or {},
        request_id=request_id,
    )


def create_campaign(
    actor: AbstractBaseUser,
    experiment: Experiment,
    *,
    name: str,
    deadline: dt.date | str,
    priority: str = Priority.NORMAL,
    throttle: int | None = None,
    backend: str = "",
    description: str = "",
    **placement: str,
) -> Campaign:
    """Open a new campaign (state planned) for ``experiment``; operators only.

    The backend defaults to the experiment's; the name is unique within the
    experiment; the deadline may not be in the past. ``placement``: the campaign's own
    ``batch_partition``, ``batch_account``, ``batch_qos``, ``batch_requirements``
    (empty: the experiment's).
    """
    unknown = sorted(set(placement) - set(PLACEMENT_FIELDS))
    if unknown:
        raise CampaignError(
            "The campaign cannot be created.", [f"{name}: not a field" for name in unknown]
        )
    require_operator(actor, "create campaigns")
    cleaned, problems = _clean_fields(
        {
            "name": name,
            "description": description,
            "deadline": deadline,
            "priority": priority,
            "throttle": throttle,
            "backend": backend,
            **placement,
        },
        experiment,
    )
    if (
        not problems
        and Campaign.objects.filter(experiment=experiment, name=cleaned["name"]).exists()
    ):
        problems.append(f"name: {experiment.slug} already has a campaign named {cleaned['name']!r}")
    if problems:
        raise CampaignError("The campaign cannot be created.", problems)
    with transaction.atomic():
        campaign = Campaign.objects.create(experiment=experiment, created_by=actor, **cleaned)
        _record(
            campaign,
            CampaignEventKind.CREATED,
            actor,
            changes={k: [None, _plain(v)] for k, v in cleaned.items() if k != "description"},
        )
    return campaign


def _plain(value):
    """JSON-friendly form of a field value for the audit record."""
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def update_campaign(
    campaign: Campaign | int,
    actor: AbstractBaseUser,
    changes: dict[str, Any],
    reason: str = "",
    effect: Effect | None = None,
) -> Campaign:
    """Change a campaign's name, description, priority, deadline, throttle or backend.

    Priority and deadline changes need a ``reason``; every change is recorded
    with the old and the new value. Of a closed (completed or cancelled)
    campaign only the deadline changes, to repair one that is out of bounds.
    A priority change records its effect on everyone else's work (``common.decisions``):
    ``effect``, what the decision page showed; without one (the API, the CLI) it is
    computed at the change, with the new priority alone, or why not is recorded.
    """
    require_operator(actor, "change campaigns")
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise CampaignError(
            "Cannot change the campaign.",
            [f"{f}: cannot be changed (editable: {', '.join(EDITABLE_FIELDS)})" for f in unknown],
        )
    campaign_id = campaign if isinstance(campaign, int) else campaign.pk
    with transaction.atomic():
        current = _lock(campaign_id)
        cleaned, problems = _clean_fields(changes, current.experiment, current)
        diff = {k: v for k, v in cleaned.items() if getattr(current, k) != v}
        if "name" in diff and (
            Campaign.objects.filter(experiment_id=current.experiment_id, name=diff["name"])
            .exclude(pk=current.pk)
            .exists()
        ):
            problems.append(f"name: another campaign is named {diff['name']!r}")
        if any(f in diff for f in REASONED_FIELDS) and not (reason or "").strip():
            problems.append("reason: required to change the priority or the deadline")
        if problems:
            raise CampaignError("Cannot change the campaign.", problems)
        if not diff:
            return current
        # A closed campaign keeps its plan, but its deadline can still be repaired
        # (one out of bounds would otherwise stay on every page and report).
        if current.state not in OPEN_CAMPAIGN_STATES and set(diff) - {"deadline"}:
            raise CampaignError(
                f"The campaign is {current.state}; only its deadline can still be changed.",
                [f"state: {current.state}"],
                kind="conflict",
            )
        decided = None
        if "priority" in diff:
            # Checked: its effect on others, projected on the state the change moves.
            decided = effect or effect_at_decision(
                {"change": "priority", "campaign": current.pk, "priority": str(diff["priority"])}
            )
        won = Campaign.objects.filter(pk=current.pk, state=current.state).update(
            updated=timezone.now(), **diff
        )
        if not won:
            raise CampaignError(
                "Someone changed the campaign at the same time; reload.", kind="conflict"
            )
        recorded = {k: [_plain(getattr(current, k)), _plain(v)] for k, v in diff.items()}
        if decided is not None:
            recorded |= decided.as_changes()
        event = _record(current, CampaignEventKind.EDITED, actor, reason.strip(), recorded)
        current.refresh_from_db()
        # Jobs already queued at the batch system follow, in this same transaction.
        if "priority" in diff:
            controls.on_priority(current.pk, event)
        if set(diff) & set(PLACEMENT_FIELDS):
            controls.on_placement(event, current)
    return current


def campaign_action(
    campaign: Campaign | int,
    action: str,
    actor: AbstractBaseUser,
    note: str = "",
    effect: Effect | None = None,
) -> Campaign:
    """Launch, pause, resume or cancel a campaign (operators only).

    Cancel marks the campaign cancelled, cancels every job not yet submitted,
    and sets ``cancel_pending`` when jobs are queued or running, for
    execution to cancel at the batch system. Requests of the campaign that
    never started return to ``approved`` (their unsubmitted plan is dropped)
    so they can be scheduled elsewhere; started ones keep their record here.
    A launch records its effect on everyone else's work (``common.decisions``):
    ``effect``, what the decision page showed; without one (the API, the CLI) it is
    computed at the launch, or why not is recorded: the launch never waits on it.
    """
    spec = CAMPAIGN_ACTIONS.get(action)
    if spec is None or action not in OPERATOR_ACTIONS:
        raise CampaignError(
            f"Unknown action {action!r}.", [f"action: choose one of {', '.join(OPERATOR_ACTIONS)}"]
        )
    require_operator(actor, f"{action} campaigns")
    campaign_id = campaign if isinstance(campaign, int) else campaign.pk
    with transaction.atomic():
        current = _lock(campaign_id)
        if current.state not in spec.sources:
            allowed = ", ".join(sorted(spec.sources))
            raise CampaignError(
                f"Cannot {action}: the campaign is {current.state}.",
                [f"{action} needs the state: {allowed}"],
                kind="conflict",
            )
        if action == "cancel" and not note.strip():
            # Cancelling stops every job and cannot be undone: the history must say why.
            raise CampaignError(
                "A reason is required to cancel a campaign.",
                ["note: say why the campaign is cancelled; it is recorded"],
                kind="invalid",
            )
        decided = None
        now = timezone.now()
        fields: dict[str, Any] = {"state": spec.target, "updated": now}
        if action == "launch":
            if not Stage.objects.filter(campaign=current).exists():
                raise CampaignError(
                    "Cannot launch a campaign with nothing planned.",
                    ["requests: schedule at least one approved request first"],
                    kind="conflict",
                )
            # Checked: its effect on others, projected on the state the launch changes.
            decided = effect or effect_at_decision({"change": "launch", "campaign": current.pk})
            fields["launched_at"] = current.launched_at or now
            if current.test_jobs:  # a test launch first (campaigns.services.testlaunch)
                fields["test_phase"] = LaunchPhase.TESTING
        elif action == "cancel":
            fields["cancelled_at"] = now
        won = Campaign.objects.filter(pk=current.pk, state=current.state).update(**fields)
        if not won:
            raise CampaignError(
                "Someone changed the campaign at the same time; reload.", kind="conflict"
            )
        changes = {"state": [current.state, spec.target]}
        if "test_phase" in fields:
            changes["test_phase"] = [current.test_phase, fields["test_phase"]]
        if decided is not None:
            changes |= decided.as_changes()
        event = _record(current, spec.event, actor, note.strip(), changes)
        if action == "cancel":
            _cancel_work(current, actor, note)
        elif action == "pause":
            controls.on_pause(event)  # hold what is queued at the batch system
        elif action == "resume":
            controls.on_resume(event)
        current.refresh_from_db()
    return current


def _cancel_work(campaign: Campaign, actor: AbstractBaseUser, note: str) -> None:
    """Cancel everything not yet submitted; flag what is in flight for execution."""
    untouched = _not_started_requests(campaign)
    for request_id in untouched:
        _drop_request(campaign, request_id, actor, note or "campaign cancelled")
    stage_ids = list(Stage.objects.filter(campaign=campaign).values_list("id", flat=True))
    if not stage_ids:
        return
    now = timezone.now()
    Job.objects.filter(stage_id__in=stage_ids, state__in=sorted(WAITING_JOB_STATES)).update(
        state=JobState.CANCELLED, state_since=now, finished=now
    )
    recount_stages(stage_ids)
    if Job.objects.filter(stage_id__in=stage_ids, state__in=sorted(ACTIVE_JOB_STATES)).exists():
        Campaign.objects.filter(pk=campaign.pk).update(cancel_pending=True)


def _not_started_requests(campaign: Campaign) -> list[int]:
    """Scheduled requests of the campaign none of whose jobs ever reached a batch system."""
    candidates = list(
        ProductionRequest.objects.filter(
            campaign_link__campaign=campaign, state=RequestState.SCHEDULED
        ).values_list("pk", flat=True)
    )
    if not candidates:
        return []
    started = set(
        Job.objects.filter(stage__campaign=campaign, stage__request_id__in=candidates)
        .filter(Q(submission__isnull=False) | ~Q(state__in=sorted(WAITING_JOB_STATES)))
        .values_list("stage__request_id", flat=True)
        .distinct()
    )
    # A submission in flight holds its jobs by listing them (execution/submission.py: claim)
    # before it links them: those jobs are on their way to a batch system.
    started.update(
        Submission.objects.filter(
            stage__campaign=campaign,
            stage__request_id__in=candidates,
            state=SubmissionState.SUBMITTING,
        ).values_list("stage__request_id", flat=True)
    )
    return [pk for pk in candidates if pk not in started]


def remove_request(
    campaign: Campaign | int,
    request: ProductionRequest | int,
    actor: AbstractBaseUser,
    reason: str = "",
) -> ProductionRequest:
    """Take a request that has not started out of a campaign; it goes back to approved.

    Its planned stages, jobs and (empty) output datasets are deleted: none of
    them ever reached a batch system.
    """
    require_operator(actor, "remove requests from campaigns")
    campaign_id = campaign if isinstance(campaign, int) else campaign.pk
    request_id = request if isinstance(request, int) else request.pk
    with transaction.atomic():
        current = _lock(campaign_id)
        if current.state not in OPEN_CAMPAIGN_STATES:
            raise CampaignError(
                f"The campaign is {current.state}; its requests can no longer change.",
                [f"state: {current.state}"],
                kind="conflict",
            )
        link = CampaignRequest.objects.filter(campaign=current, request_id=request_id).first()
        if link is None:
            raise CampaignError(
                "The request is not in this campaign.", [f"request: {request_id}"], kind="invalid"
            )
        if request_id not in _not_started_requests(current):
            raise CampaignError(
                "The request has started; hold or cancel it instead of removing it.",
                ["request: jobs of it were already submitted"],
                kind="conflict",
            )
        if not reason.strip():
            # Its whole plan is deleted: the history must say why.
            raise CampaignError(
                "A reason is required to remove a request from a campaign.",
                ["reason: say why the request leaves the campaign; it is recorded"],
                kind="invalid",
            )
        return _drop_request(current, request_id, actor, reason.strip())


def _drop_request(
    campaign: Campaign, request_id: int, actor: AbstractBaseUser, reason: str
) -> ProductionRequest:
    stages = Stage.objects.filter(campaign=campaign, request_id=request_id)
    stage_ids = list(stages.values_list("id", flat=True))
    dataset_ids = list(stages.values_list("output_dataset_id", flat=True))
    # Raw delete: these jobs were never submitted, so no output file or retry
    # points at them, and the ORM's collector would load every row (hundreds
    # of thousands for a big sample) just to find that out.
    jobs = Job.objects.filter(stage_id__in=stage_ids)
    jobs._raw_delete(jobs.db)
    Stage.objects.filter(pk__in=stage_ids).delete()
    Dataset.objects.filter(pk__in=dataset_ids, file_count=0, files__isnull=True).delete()
    CampaignRequest.objects.filter(campaign=campaign, request_id=request_id).delete()
    number = ProductionRequest.objects.values_list("number", flat=True).get(pk=request_id)
    _record(
        campaign,
        CampaignEventKind.REQUEST_REMOVED,
        actor,
        reason,
        {"request": [number, None]},
        request_id,
    )
    try:
        return system_transition(
            request_id,
            "unschedule",
            note=reason or f"Removed from campaign {campaign.name}.",
            actor=actor,
        )
    except TransitionError as exc:
        raise CampaignError(f"{number}: {exc.detail}", exc.reasons, kind="conflict") from exc


def complete_campaign_if_done(
    campaign: Campaign | int, actor: AbstractBaseUser | None = None
) -> bool:
    """Mark an active campaign completed once every job index of every stage succeeded.

    For execution to call after finalizing jobs; harmless when repeated.
    """
    campaign_id = campaign if isinstance(campaign, int) else campaign.pk
    with transaction.atomic():
        current = _lock(campaign_id)
        if current.state != CampaignState.ACTIVE:
            return False
        stage_ids = Stage.objects.filter(campaign=current).values("id")
        if Job.objects.filter(stage_id__in=stage_ids, state__in=sorted(OPEN_JOB_STATES)).exists():
            return False
        unfinished = (
            Stage.objects.filter(campaign=current)
            .annotate(
                done=Count("jobs__index", filter=Q(jobs__state=JobState.SUCCEEDED), distinct=True)
            )
            .filter(done__lt=F("jobs_total"))
        )
        if unfinished.exists() or not Stage.objects.filter(campaign=current).exists():
            return False
        now = timezone.now()
        won = Campaign.objects.filter(pk=current.pk, state=CampaignState.ACTIVE).update(
            state=CampaignState.COMPLETED, completed_at=now, updated=now
        )
        if won:
            _record(
                current,
                CampaignEventKind.COMPLETED,
                actor,
                "every job succeeded",
                {"state": [CampaignState.ACTIVE, CampaignState.COMPLETED]},
            )
    return bool(won)

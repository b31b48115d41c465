"""Extending a running Monte Carlo request by more events (DIRAC's extendTransformation).

An extension is filed (``file_extension``: a liaison of the experiment or an operator, with
a reason) and decided like a request: an operator approves it (``approve_extension``) or
rejects it with a reason. Approval appends the new jobs to the plan in one transaction:
each stage of the sample gets the jobs the extra events make (split by the same rules as
at scheduling, ``expansion.plan_sample``), numbered after its last job, the events
continuing after the sample's last event, a downstream stage reading the new upstream
jobs. The sample's events grow, so the forecast and the deadline status follow from the
counters at once. Every step is on the request's history (and the approval a campaign
event); the requester is told.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from common import limits
from experiments.models import StageTemplate
from requests_app.choices import IN_CAMPAIGN_STATES
from requests_app.models import ProductionRequest, Sample, Transition
from requests_app.services.notifications import notify_operators
from requests_app.services.requests import can_file, post_system_notes

from ..choices import OPEN_CAMPAIGN_STATES, CampaignEventKind, ExtensionState, JobState
from ..models import Campaign, CampaignEvent, CampaignRequest, Extension, Job, Stage
from .errors import CampaignError, require_operator
from .expansion import _insert_jobs, plan_sample
from .templates import topological_order

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        number = int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if not isinstance(value, float) or value.is_integer() else None


def _sample(request: ProductionRequest, sample: Sample | int | str | None) -> Sample:
    samples = list(request.samples.select_related("template"))
    if sample is None and len(samples) == 1:
        return samples[0]
    if isinstance(sample, Sample):
        sample = sample.pk
    for s in samples:
        if str(sample) in (s.name, str(s.pk)):
            return s
    names = ", ".join(s.name for s in samples)
    raise CampaignError(
        "Which sample should be extended?",
        [f"sample: {'required' if sample is None else repr(sample) + ' is not one'}: {names}"],
        kind="invalid",
    )


def _check_running(request: ProductionRequest) -> Campaign:
    link = CampaignRequest.objects.filter(request=request).select_related("campaign").first()
    if request.state not in IN_CAMPAIGN_STATES or link is None:
        raise CampaignError(
            f"Cannot extend {request.number}: it is {request.get_state_display().lower()}.",
            [
                "extend needs a request scheduled or in production in a campaign (clone it "
                "into a new request otherwise)"
            ],
            kind="conflict",
        )
    if link.campaign.state not in OPEN_CAMPAIGN_STATES:
        raise CampaignError(
            f"Cannot extend {request.number}: its campaign is {link.campaign.state}.",
            ["extend needs an open campaign (planned, active or paused)"],
            kind="conflict",
        )
    if link.abandoned_at is not None:
        raise CampaignError(
            f"{request.number} was completed with the rest abandoned.", kind="conflict"
        )
    return link.campaign


def _check_extension(sample: Sample, events: Any) -> int:
    extra = _whole(events)
    problems = []
    if extra is None or extra <= 0:
        problems.append("events: a whole number greater than zero")
    elif sample.events + extra > limits.max_events_per_sample():
        problems.append(
            f"events: the sample would have {sample.events + extra} events, more than "
            f"{limits.max_events_per_sample()} (OPOS_MAX_EVENTS_PER_SAMPLE)"
        )
    if sample.input_dataset:
        problems.append(
            f"sample: {sample.name} reads the dataset {sample.input_dataset}; only Monte "
            "Carlo samples (no input dataset) are extended by events"
        )
    if problems:
        raise CampaignError(f"Cannot extend {sample.name}.", problems, kind="invalid")
    return extra  # type: ignore[return-value]


def file_extension(
    request: ProductionRequest,
    user: AbstractBaseUser,
    events: Any,
    reason: str,
    sample: Sample | int | str | None = None,
) -> Extension:
    """File an extension (submitted) of one sample of a running request."""
    if not can_file(user, request.experiment):
        raise CampaignError(
            f"Only liaisons of {request.experiment.name} and operators extend its requests.",
            kind="forbidden",
        )
    reason = (reason or "").strip()
    if not reason:
        raise CampaignError(
            "A reason is required to extend a request.",
            ["reason: say why more events are needed; it is recorded"],
        )
    target = _sample(request, sample)
    _check_running(request)
    extra = _check_extension(target, events)
    with transaction.atomic():
        extension = Extension.objects.create(
            request=request, sample=target, events=extra, reason=reason[:5000], requested_by=user
        )
        Transition.objects.create(
            request=request,
            action="extension_filed",
            from_state=request.state,
            to_state=request.state,
            actor=user,
            note=reason[:5000],
            changes={
                "extension": [None, extension.pk],
                "events": [None, extra],
                "sample": [None, target.name],
            },
        )
    transaction.on_commit(
        lambda: notify_operators(
            f"extension of {request.number} to decide",
            f"{user} asks for {extra} more events of {target.name} in {request.number}.\n"
            f"Reason: {reason}\n",
        )
    )
    return extension


def _decidable(extension: Extension | int) -> Extension:
    pk = extension if isinstance(extension, int) else extension.pk
    current = (
        Extension.objects.select_for_update(of=("self",))
        .select_related("request__experiment", "sample__template")
        .get(pk=pk)
    )
    if current.state != ExtensionState.SUBMITTED:
        raise CampaignError(
            f"The extension is already {current.state}.",
            ["approve and reject need the state: submitted"],
            kind="conflict",
        )
    return current


def approve_extension(
    extension: Extension | int, user: AbstractBaseUser, note: str = ""
) -> Extension:
    """Approve an extension and append its jobs to the plan (operators; one transaction)."""
    require_operator(user, "approve extensions")
    with transaction.atomic():
        current = _decidable(extension)
        request = ProductionRequest.objects.select_for_update().get(pk=current.request_id)
        campaign = _check_running(request)
        Campaign.objects.select_for_update().filter(pk=campaign.pk).first()
        sample = Sample.objects.select_for_update().get(pk=current.sample_id)
        _check_extension(sample, current.events)
        jobs = _append(campaign, sample, current.events)
        old_events = sample.events
        Sample.objects.filter(pk=sample.pk).update(events=F("events") + current.events)
        now = timezone.now()
        Extension.objects.filter(pk=current.pk).update(
            state=ExtensionState.APPROVED,
            decided_by=user,
            decided=now,
            decision_note=(note or "").strip()[:5000],
            jobs_added=jobs,
        )
        changes = {
            "events": [old_events, old_events + current.events],
            "jobs_added": [None, jobs],
            "sample": [None, sample.name],
        }
        Transition.objects.create(
            request=request,
            action="extend",
            from_state=request.state,
            to_state=request.state,
            actor=user,
            note=(note or "").strip()[:5000],
            changes={"extension": [None, current.pk], **changes},
        )
        CampaignEvent.objects.create(
            campaign=campaign,
            kind=CampaignEventKind.EXTENDED,
            actor=user,
            reason=current.reason,
            request=request,
            changes={"request": [None, request.number], **changes},
        )
        post_system_notes(
            {
                request.pk: f"Extension approved: {sample.name} grows by {current.events} "
                f"events to {old_events + current.events} ({jobs} more jobs)."
            }
        )
        current.refresh_from_db()
    return current


def reject_extension(extension: Extension | int, user: AbstractBaseUser, note: str) -> Extension:
    """Refuse an extension, saying why (operators)."""
    require_operator(user, "reject extensions")
    note = (note or "").strip()
    if not note:
        raise CampaignError(
            "A reason is required to reject an extension.", ["note: say why; it is recorded"]
        )
    with transaction.atomic():
        current = _decidable(extension)
        Extension.objects.filter(pk=current.pk).update(
            state=ExtensionState.REJECTED,
            decided_by=user,
            decided=timezone.now(),
            decision_note=note[:5000],
        )
        Transition.objects.create(
            request=current.request,
            action="extension_rejected",
            from_state=current.request.state,
            to_state=current.request.state,
            actor=user,
            note=note[:5000],
            changes={"extension": [None, current.pk]},
        )
        post_system_notes(
            {
                current.request_id: f"Extension of {current.sample.name} by "
                f"{current.events} events rejected: {note}"
            }
        )
        current.refresh_from_db()
    return current


def _append(campaign: Campaign, sample: Sample, extra: int) -> int:
    """Plan the extra events of ``sample`` and append the jobs to its stages; return how many."""
    stages = {
        s.template_stage_id: s
        for s in Stage.objects.select_for_update().filter(campaign=campaign, sample=sample)
    }
    if None in stages or not stages:
        raise CampaignError(
            f"Cannot extend {sample.name}: its plan no longer matches a template.",
            ["sample: a template stage it was planned from was deleted"],
            kind="conflict",
        )
    templates = topological_order(
        StageTemplate.objects.filter(pk__in=list(stages)).select_related("code")
    )
    # The extra events as a sample of their own: split by the same rules, then numbered on.
    more = Sample(
        name=sample.name,
        events=extra,
        events_per_job=sample.events_per_job,
        parameters=sample.parameters,
        output_dataset=sample.output_dataset,
        input_dataset="",
    )
    plans, problems = plan_sample(more, templates, None, sample.name)
    if problems:
        raise CampaignError(f"Cannot extend {sample.name}.", problems, kind="invalid")
    total = sum(s.jobs_total for s in stages.values()) + sum(p.jobs for p in plans)
    if total > limits.max_jobs_per_sample():
        raise CampaignError(
            f"Cannot extend {sample.name}.",
            [
                f"events: the sample would make {total} jobs, more than "
                f"{limits.max_jobs_per_sample()} (OPOS_MAX_JOBS_PER_SAMPLE)"
            ],
        )
    since = Job._meta.get_field("state_since").get_db_prep_save(timezone.now(), connection)
    no_files = Job._meta.get_field("input_files").get_db_prep_save([], connection)
    rows: list[tuple] = []
    added = 0
    for plan in plans:
        stage = stages[plan.template_stage.pk]
        offset = stage.jobs_total
        upstream = stages[plan.input.template_stage.pk].jobs_total if plan.input else 0
        state = JobState.READY if plan.input is None else JobState.PLANNED
        for i in range(plan.jobs):
            rows.append(
                (
                    stage.pk,
                    offset + i,
                    state,
                    since,
                    sample.events + plan.firsts[i],
                    plan.counts[i],
                    None if plan.input_first is None else upstream + plan.input_first[i],
                    0 if plan.input_count is None else plan.input_count[i],
                    no_files,
                )
            )
        counter = "n_ready" if plan.input is None else "n_planned"
        Stage.objects.filter(pk=stage.pk).update(
            jobs_total=F("jobs_total") + plan.jobs, **{counter: F(counter) + plan.jobs}
        )
        added += plan.jobs
    _insert_jobs(rows)
    return added

"""Execution pages: the jobs of a stage with their failure class and log tail, stuck work;
and the operators' recover and cancel-and-retry (the catalogue is in ``catalogue.py``).

Bounded queries per page whatever the data size: counts come from the dataset and stage
counters, lists are paginated, the log tail is read from one job's folder on demand.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from experiments.access import operator_required
from experiments.models.visibility import is_operator

from ..choices import ACTIVE_JOB_STATES, FailureClass, JobState
from ..execution.logs import stderr_tail
from ..execution.stuck import cancel_and_retry
from ..models import Job, Stage, StuckFlag
from ..services import CampaignError
from .access import refused

PAGE = 50


def _page(request, queryset):
    return Paginator(queryset, PAGE).get_page(request.GET.get("page"))


def _keep(**params: str) -> str:
    """The filters to repeat in the pager's links (``a=1&b=2&``), URL-encoded."""
    kept = {k: v for k, v in params.items() if v}
    return urlencode(kept) + "&" if kept else ""


@login_required
def stage_jobs(request, pk: int):
    """Jobs of one stage (every attempt), filterable by state and failure class; the stderr
    tail of the job picked with ``?job=``; open stuck flags of the stage."""
    stage = get_object_or_404(
        Stage.objects.visible_to(request.user).select_related("campaign", "request"), pk=pk
    )
    jobs = Job.objects.filter(stage=stage)
    state = request.GET.get("state", "")
    if state in JobState.values:
        jobs = jobs.filter(state=state)
    failure = request.GET.get("failure_class", "")
    if failure in FailureClass.values:
        jobs = jobs.filter(failure_class=failure)
    picked = None
    job_id = request.GET.get("job", "")
    if job_id.isdigit():
        picked = Job.objects.filter(stage=stage, pk=int(job_id)).first()
    flags = list(StuckFlag.objects.open().filter(stage=stage).order_by("-created")[:50])
    return render(
        request,
        "campaigns/execution/stage_jobs.html",
        {
            "stage": stage,
            "campaign": stage.campaign,
            # The stage's values, as the example of what a recovery may override.
            "param_hint": " ".join(f"{k}={v}" for k, v in (stage.parameters or {}).items()),
            "recoverable": [JobState.FAILED, JobState.LOST, JobState.CANCELLED],
            "page": _page(request, jobs.order_by("index", "attempt")),
            "state": state,
            "failure_class": failure,
            "states": JobState.choices,
            "classes": FailureClass.choices,
            "picked": picked,
            "tail": stderr_tail(picked.workdir, 4000, picked.batch_id) if picked else "",
            "flags": flags,
            "operator": is_operator(request.user),
            "active": sorted(ACTIVE_JOB_STATES),
            "keep": _keep(state=state, failure_class=failure),
        },
    )


@login_required
def stuck_list(request):
    """Open stuck flags of the campaigns the user may see."""
    flags = (
        StuckFlag.objects.visible_to(request.user)
        .open()
        .select_related("campaign", "stage", "job")
        .order_by("-created", "-id")
    )
    return render(
        request,
        "campaigns/execution/stuck_list.html",
        {"page": _page(request, flags), "operator": is_operator(request.user)},
    )


@require_POST
@operator_required
def job_cancel_retry(request, pk: int):
    """Cancel a job at the batch system and queue a new attempt."""
    job = get_object_or_404(Job, pk=pk)
    try:
        result = cancel_and_retry(request.user, [job.pk], note=request.POST.get("note", ""))
    except CampaignError as exc:
        refused(request, exc)
    else:
        if result.cancelled:
            messages.success(
                request, f"Job {job.index} cancelled; attempt {job.attempt + 1} queued."
            )
        else:
            messages.error(request, "The job is no longer in flight; nothing was cancelled.")
    return redirect("campaigns:stage_jobs", pk=job.stage_id)

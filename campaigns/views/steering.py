"""Browser actions for steering: recovery with overrides, force-complete, test launches,
clones and extensions. Each posts to a service and comes back to the page it came from,
with the outcome (or the refusal and its reasons) as messages."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from common.errors import PermissionDenied
from experiments.access import operator_required
from experiments.models.visibility import is_operator
from requests_app.services.cloning import clone_request
from requests_app.views.access import visible_request

from ..execution.recovery import recover_campaign
from ..models import Extension, Stage
from ..services import CampaignError
from ..services.completion import force_complete_campaign, force_complete_request
from ..services.extension import approve_extension, file_extension, reject_extension
from ..services.testlaunch import launch_full, update_test_settings
from .access import operator_on, refused


def overrides_from_post(post) -> dict:
    """Memory, walltime and ``NAME=VALUE`` lines of parameters from a recovery form."""
    params: dict[str, str] = {}
    problems = []
    for number, line in enumerate((post.get("parameters") or "").splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            problems.append(f"parameters: line {number} ({line.strip()[:40]!r}) is not NAME=VALUE")
            continue
        params[name.strip()] = value.strip()
    if problems:
        raise CampaignError("The overrides are not valid.", problems)
    return {
        "memory_mb": post.get("memory_mb") or None,
        "walltime_s": post.get("walltime_s") or None,
        "parameters": params,
    }


def _recovered(request, result) -> None:
    shown = ", ".join(
        f"{k} {v}" for k, v in result.overrides.items() if k != "parameters"
    ) + "".join(f", {k}={v}" for k, v in result.overrides.get("parameters", {}).items())
    messages.success(
        request,
        f"Recovery launched: {result.failed} failed jobs and {result.missing_outputs} with "
        "missing outputs resubmitted" + (f" with {shown.lstrip(', ')}." if shown else "."),
    )


@require_POST
@operator_on
def campaign_recover(request, campaign):
    try:
        result = recover_campaign(
            campaign,
            request.user,
            note=request.POST.get("note", ""),
            overrides=overrides_from_post(request.POST),
        )
    except CampaignError as exc:
        refused(request, exc)
    else:
        _recovered(request, result)
    return redirect("campaigns:detail", pk=campaign.pk)


@require_POST
@operator_required
def stage_recover(request, pk: int):
    """Recovery of one stage, or of the jobs ticked on its page, with overrides."""
    stage = get_object_or_404(Stage.objects.select_related("campaign"), pk=pk)
    try:
        jobs = [int(v) for v in request.POST.getlist("job") if v.isdigit()] or None
        result = recover_campaign(
            stage.campaign,
            request.user,
            stage,
            request.POST.get("note", ""),
            jobs=jobs,
            overrides=overrides_from_post(request.POST),
        )
    except CampaignError as exc:
        refused(request, exc)
    else:
        _recovered(request, result)
    return redirect("campaigns:stage_jobs", pk=stage.pk)


@require_POST
@operator_on
def campaign_force_complete(request, campaign):
    try:
        result = force_complete_campaign(campaign, request.user, request.POST.get("reason", ""))
    except CampaignError as exc:
        refused(request, exc)
    else:
        messages.success(
            request,
            f"Force-completed at {result.percent:.1f} % (threshold {result.threshold} %); "
            f"{result.cancelled_jobs} jobs cancelled.",
        )
    return redirect("campaigns:detail", pk=campaign.pk)


@require_POST
@operator_on
def campaign_launch_full(request, campaign):
    try:
        launch_full(campaign, request.user, request.POST.get("note", ""))
    except CampaignError as exc:
        refused(request, exc)
    else:
        messages.success(request, "Full launch: every job of the campaign may now run.")
    return redirect("campaigns:detail", pk=campaign.pk)


@require_POST
@operator_on
def campaign_settings(request, campaign):
    post = request.POST
    try:
        update_test_settings(
            campaign,
            request.user,
            test_jobs=post.get("test_jobs") if "test_jobs" in post else None,
            test_auto_continue="test_auto_continue" in post,
            completion_pct=post.get("completion_pct", ""),
        )
    except CampaignError as exc:
        refused(request, exc)
    else:
        messages.success(request, "Settings saved.")
    return redirect("campaigns:detail", pk=campaign.pk)


@require_POST
@login_required
def request_clone(request, number: str):
    source = visible_request(request.user, number)
    try:
        clone = clone_request(request.user, source)
    except PermissionDenied as exc:
        messages.error(request, str(exc))
    except ValidationError as exc:
        messages.error(request, f"{source.number} cannot be cloned as it is:")
        for field, problems in exc.message_dict.items():
            for problem in problems:
                messages.error(request, f"{field}: {problem}", extra_tags="reason")
    else:
        messages.success(request, f"Cloned {source.number} into the draft {clone.number}.")
        return redirect(clone.get_absolute_url())
    return redirect(source.get_absolute_url())


@require_POST
@login_required
def request_extend(request, number: str):
    obj = visible_request(request.user, number)
    try:
        filed = file_extension(
            obj,
            request.user,
            request.POST.get("events"),
            request.POST.get("reason", ""),
            request.POST.get("sample") or None,
        )
    except CampaignError as exc:
        refused(request, exc)
    else:
        messages.success(
            request, f"Extension by {filed.events} events filed; an operator decides on it."
        )
    return redirect(obj.get_absolute_url())


@require_POST
@operator_required
def extension_decide(request, pk: int):
    target = get_object_or_404(Extension.objects.select_related("request"), pk=pk)
    decision = request.POST.get("decision")
    try:
        if decision == "approve":
            done = approve_extension(target, request.user, request.POST.get("note", ""))
            messages.success(request, f"Extension approved: {done.jobs_added} jobs added.")
        elif decision == "reject":
            reject_extension(target, request.user, request.POST.get("note", ""))
            messages.success(request, "Extension rejected.")
        else:
            messages.error(request, "Choose approve or reject.")
    except CampaignError as exc:
        refused(request, exc)
    return redirect(target.request.get_absolute_url())


@require_POST
@login_required
def request_force_complete(request, number: str):
    obj = visible_request(request.user, number)
    if not is_operator(request.user):
        messages.error(request, "Only OPOS operators force-complete requests.")
        return redirect(obj.get_absolute_url())
    try:
        result = force_complete_request(obj, request.user, request.POST.get("reason", ""))
    except CampaignError as exc:
        refused(request, exc)
    else:
        messages.success(
            request,
            f"Completed at {result.percent:.1f} % (threshold {result.threshold} %); the rest "
            "is abandoned and the requester told.",
        )
    return redirect(obj.get_absolute_url())

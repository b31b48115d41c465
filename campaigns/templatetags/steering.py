"""Steering panels on the campaign and request pages (test launch, force-complete, recovery
with overrides; clone, extension). Each costs a fixed number of queries."""

from __future__ import annotations

from typing import Any

from django import template

from experiments.models.visibility import is_operator
from requests_app.choices import IN_CAMPAIGN_STATES
from requests_app.services import can_file

from ..choices import OPEN_CAMPAIGN_STATES, LaunchPhase
from ..models import CampaignRequest, Extension
from ..services.completion import Done, progress_of, threshold_of

register = template.Library()


def _total(progress: dict[int, Done]) -> Done:
    total = Done()
    for entry in progress.values():
        total.done += entry.done
        total.total += entry.total
    return total


@register.inclusion_tag("campaigns/_steering.html", takes_context=True)
def campaign_steering(context) -> dict[str, Any]:
    campaign = context["campaign"]
    operator = context.get("operator", False)
    out: dict[str, Any] = {
        "campaign": campaign,
        "operator": operator,
        "csrf_token": context.get("csrf_token"),
        "open": campaign.state in OPEN_CAMPAIGN_STATES,
        "phases": LaunchPhase,
    }
    fragments = context.get("fragments") or {}
    figures = fragments.get("completion") if "completion" in fragments else None
    if operator and figures is None and "completion" not in fragments:
        figures = completion_figures(campaign)  # a page without the cached plan
    if figures:
        out.update(figures)
    return out


def completion_figures(campaign) -> dict[str, Any] | None:
    """Done and threshold for the force-complete form of an active or paused campaign (two
    queries; the plan page caches them with its fragments)."""
    if campaign.state not in ("active", "paused"):
        return None
    progress = progress_of(campaign.pk)
    threshold, source = threshold_of(campaign, list(progress))
    return {"done": _total(progress), "threshold": threshold, "threshold_source": source}


@register.inclusion_tag("campaigns/_request_steering.html", takes_context=True)
def request_steering(context) -> dict[str, Any]:
    request = context["object"]
    user = context["request"].user
    operator = is_operator(user)
    link = (
        CampaignRequest.objects.filter(request=request)
        .select_related("campaign")
        .only(
            "campaign__state",
            "campaign__name",
            "campaign__completion_pct",
            "abandoned_at",
            "abandon_reason",
            "abandoned_jobs",
            "done_pct",
            "campaign_id",
        )
        .first()
    )
    running = (
        request.state in IN_CAMPAIGN_STATES
        and link is not None
        and link.campaign.state in OPEN_CAMPAIGN_STATES
        and link.abandoned_at is None
    )
    out: dict[str, Any] = {
        "object": request,
        "csrf_token": context.get("csrf_token"),
        "operator": operator,
        "can_file": can_file(user, request.experiment),
        "running": running,
        "link": link,
        "samples": context.get("samples") or [],
        # Extensions are filed only for requests in a campaign: no query for the others.
        "extensions": list(
            Extension.objects.filter(request=request).select_related(
                "sample", "requested_by", "decided_by"
            )[:20]
        )
        if link is not None
        else [],
    }
    if operator and running:
        out["done"] = progress_of(link.campaign_id, [request.pk]).get(request.pk, Done())
        out["threshold"], out["threshold_source"] = threshold_of(link.campaign, [request.pk])
    return out

"""The decision pages: what a launch, a priority change, a scheduling or an approval would
do to everyone else, shown before the operator takes it. Nothing is changed here: the
page's go-ahead form posts the decision to its usual place (the campaign's or the
request's actions) with the effect it showed, signed, and that is recorded with it."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render
from rest_framework.exceptions import ValidationError

from campaigns.models import Campaign, CampaignRequest
from common.decisions import sign_effect
from requests_app.choices import PRIORITY_WEIGHT, RequestState
from requests_app.models import ProductionRequest

from .views import operator_required
from .whatif_api import effect_lines, run, run_approval


@operator_required
def campaign_what_if(request, pk: int):
    campaign = get_object_or_404(Campaign.objects.select_related("experiment"), pk=pk)
    candidates = list(
        ProductionRequest.objects.filter(
            experiment_id=campaign.experiment_id, state=RequestState.APPROVED
        )
        .exclude(pk__in=CampaignRequest.objects.values("request_id"))
        .order_by("deadline", "id")[:100]
    )
    params = {
        "change": request.GET.get("change", ""),
        "priority": request.GET.get("priority", ""),
        "requests": ",".join(request.GET.getlist("requests")),
    }
    answer, errors, status, effect, decision = None, {}, 200, "", {}
    if params["change"]:
        try:
            answer = run(campaign, params)
        except ValidationError as exc:
            errors, status = exc.detail, 400
        else:
            decision = {"change": params["change"], "campaign": campaign.pk}
            if params["change"] == "priority":
                decision["priority"] = params["priority"]
            elif params["change"] == "schedule":
                decision["requests"] = sorted(
                    {int(v) for v in params["requests"].split(",") if v.strip()}
                )
            effect = sign_effect(decision, effect_lines(answer))
    return render(
        request,
        "monitoring/what_if.html",
        {
            "campaign": campaign,
            "answer": answer,
            "errors": errors,
            "params": params,
            "decision": decision,
            "effect": effect,
            "chosen": set(request.GET.getlist("requests")),
            "candidates": candidates,
            "priorities": list(PRIORITY_WEIGHT),
        },
        status=status,
    )


@operator_required
def request_what_if(request, number: str):
    """Before an approval: the request as a campaign of its own from now (as the approval's
    forecast assumes), and what that does to every running campaign and promise."""
    target = get_object_or_404(
        ProductionRequest.objects.select_related("experiment"), number=number
    )
    answer, errors, effect = None, {}, ""
    try:
        answer = run_approval(target)
    except ValidationError as exc:
        errors = exc.detail  # a page to look at, not a refused form: said on the page
    else:
        effect = sign_effect({"change": "approve", "request": target.pk}, effect_lines(answer))
    return render(
        request,
        "monitoring/what_if_request.html",
        {"target": target, "answer": answer, "errors": errors, "effect": effect},
    )

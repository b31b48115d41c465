"""The decision page of a campaign: what a launch, a priority change or a scheduling would
do to everyone else, before the operator takes it (nothing is changed here)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render
from rest_framework.exceptions import ValidationError

from campaigns.models import Campaign, CampaignRequest
from campaigns.services.whatif import what_if
from requests_app.choices import PRIORITY_WEIGHT, RequestState
from requests_app.models import ProductionRequest

from .views import operator_required
from .whatif_api import payload, run


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
    answer, errors, status = None, {}, 200
    if params["change"]:
        try:
            answer = run(campaign, params)
        except ValidationError as exc:
            errors, status = exc.detail, 400
    return render(
        request,
        "monitoring/what_if.html",
        {
            "campaign": campaign,
            "answer": answer,
            "errors": errors,
            "params": params,
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
    answer = payload(None, what_if("approve", requests=[target]))
    return render(request, "monitoring/what_if_request.html", {"target": target, "answer": answer})

"""The decision page of a campaign: what a launch, a priority change or a scheduling would
do to everyone else, before the operator takes it (nothing is changed here)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render
from rest_framework.exceptions import ValidationError

from campaigns.models import Campaign, CampaignRequest
from requests_app.choices import PRIORITY_WEIGHT, RequestState
from requests_app.models import ProductionRequest

from .views import operator_required
from .whatif_api import run


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

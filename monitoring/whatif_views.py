"""The decision pages: what a launch, a priority change, a scheduling or an approval would
do to everyone else, shown before the operator takes it. The request's and the
campaign's buttons for these four decisions lead here; nothing is changed here: the
page's go-ahead form posts the decision to its usual place (the campaign's or the
request's actions) with the effect it showed, signed, and that is recorded with it.

When the projection fails the page says so and still offers the go-ahead, signed with
the failure, which the decision records: a what-if is advice and never blocks a decision.
"""

from __future__ import annotations

import logging

from django.shortcuts import get_object_or_404, render
from rest_framework.exceptions import ValidationError

from campaigns.models import Campaign, CampaignRequest
from common.decisions import sign_effect
from requests_app.choices import PRIORITY_WEIGHT, RequestState
from requests_app.models import ProductionRequest
from requests_app.services import unmet

from .views import operator_required
from .whatif_api import effect_lines, run, run_approval

log = logging.getLogger(__name__)
NOTE_MAX = 5000  # as the decisions' own forms


def _failure(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


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
    answer, errors, status, effect, decision, failure = None, {}, 200, "", {}, ""
    if params["change"]:
        decision = {"change": params["change"], "campaign": campaign.pk}
        if params["change"] == "priority":
            decision["priority"] = params["priority"]
        elif params["change"] == "schedule":
            decision["requests"] = sorted(
                {int(v) for v in params["requests"].split(",") if v.strip().isdigit()}
            )
        try:
            answer = run(campaign, params)
        except ValidationError as exc:
            # A decision that cannot be taken as asked (a bad priority, no request
            # ticked, a closed campaign): said on the page, no go-ahead.
            errors, status, decision = exc.detail, 400, {}
        except Exception as exc:  # the projection itself failed: advice, not a blocker
            log.exception("what-if of %s on campaign %s failed", params["change"], campaign.pk)
            failure = _failure(exc)
            effect = sign_effect(decision, [], failure)
        else:
            effect = sign_effect(decision, effect_lines(answer))
    return render(
        request,
        "monitoring/what_if.html",
        {
            "campaign": campaign,
            "answer": answer,
            "errors": errors,
            "failure": failure,
            "params": params,
            "decision": decision,
            "effect": effect,
            "chosen": set(request.GET.getlist("requests")),
            "candidates": candidates,
            "priorities": list(PRIORITY_WEIGHT),
            # What the campaign page's form carried, for the go-ahead.
            "note": request.GET.get("note", "")[:NOTE_MAX],
            "reason": request.GET.get("reason", "")[:NOTE_MAX],
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
    answer, errors, effect, failure = None, {}, "", ""
    decision = {"change": "approve", "request": target.pk}
    missing = unmet(target) if target.state == RequestState.SUBMITTED else []
    try:
        answer = run_approval(target)
    except ValidationError as exc:
        if target.state != RequestState.SUBMITTED:
            errors = exc.detail  # nothing to approve: said on the page, no go-ahead
        else:  # a submitted request the projection cannot take: advice, not a blocker
            failure = "; ".join(str(m) for msgs in exc.detail.values() for m in msgs)
            effect = sign_effect(decision, [], failure)
    except Exception as exc:  # the projection itself failed: advice, not a blocker
        log.exception("what-if of approving %s failed", target.number)
        failure = _failure(exc)
        effect = sign_effect(decision, [], failure)
    else:
        effect = sign_effect(decision, effect_lines(answer))
    return render(
        request,
        "monitoring/what_if_request.html",
        {
            "target": target,
            "answer": answer,
            "errors": errors,
            "failure": failure,
            # An ineligible request cannot be approved (the service refuses it): the page
            # says why instead of offering a go-ahead bound to fail.
            "unmet": missing,
            "effect": "" if missing else effect,
            "note": request.GET.get("note", "")[:NOTE_MAX],
        },
    )

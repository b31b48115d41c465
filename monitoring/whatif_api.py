"""``GET /api/v1/campaigns/{id}/what-if/``: what a launch, a priority change or a scheduling
into the campaign does to everyone else, before it is taken (operators only: the answer
names every experiment's work). ``campaigns.services.whatif`` runs the projection; this
adds the commitments whose status would change."""

from __future__ import annotations

import datetime as dt

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns.choices import Feasibility
from campaigns.models import Campaign
from campaigns.services.whatif import CHANGES, Effect, WhatIfError, what_if
from common.api_errors import ProblemSerializer
from experiments.models.visibility import is_operator
from requests_app.choices import PRIORITY_WEIGHT, RequestState
from requests_app.models import ProductionRequest

from .choices import MilestoneKind
from .models import Commitment

MAX_REQUESTS = 100


class EffectSerializer(serializers.Serializer):
    """A campaign (``request`` null) or request whose projection moves with the change."""

    campaign = serializers.IntegerField()
    campaign_name = serializers.CharField()
    request = serializers.CharField(allow_null=True, help_text="The request's number.")
    before_status = serializers.ChoiceField(choices=[*Feasibility.values, "not_running"])
    after_status = serializers.ChoiceField(choices=Feasibility.values)
    before_finish = serializers.DateTimeField(allow_null=True)
    after_finish = serializers.DateTimeField(allow_null=True)
    delta_hours = serializers.FloatField(
        allow_null=True, help_text="How much later it would finish (negative: earlier)."
    )
    text = serializers.CharField(help_text='"SBND reprocessing: on track -> at risk, +14 h".')


class CommitmentEffectSerializer(serializers.Serializer):
    """A 100 % commitment whose status the change would move."""

    campaign = serializers.IntegerField(allow_null=True)
    request = serializers.CharField(allow_null=True)
    promised_at = serializers.DateTimeField()
    before = serializers.CharField()
    after = serializers.CharField()


class WhatIfSerializer(serializers.Serializer):
    change = serializers.ChoiceField(choices=CHANGES)
    campaign = serializers.IntegerField(
        allow_null=True, help_text="The campaign the change is about (null for an approval)."
    )
    request = serializers.CharField(
        allow_null=True, required=False, help_text="With an approval: the request's number."
    )
    subject = EffectSerializer(allow_null=True, help_text="The campaign itself, with the change.")
    effects = EffectSerializer(many=True)
    commitments = CommitmentEffectSerializer(many=True)
    computed_at = serializers.DateTimeField()


def _text(name: str, e: Effect) -> str:
    before = e.before_status.replace("_", " ")
    after = e.after_status.replace("_", " ")
    text = f"{name}: {before} -> {after}" if e.status_changed else f"{name}: {after}"
    if e.delta_s is not None:
        text += f", {e.delta_s / 3600:+.0f} h"
    return text


def _promise_status(promised: dt.datetime, finish: dt.datetime | None) -> str:
    return "on_track" if finish is not None and finish <= promised else "at_risk"


def payload(campaign: Campaign | None, result) -> dict:
    """The answer: effects named, and the 100 % commitments they move (three queries)."""
    effects = result.effects + ([result.subject] if result.subject else [])
    names = dict(
        Campaign.objects.filter(pk__in={e.campaign_id for e in effects}).values_list("pk", "name")
    )
    numbers = dict(
        ProductionRequest.objects.filter(
            pk__in={e.request_id for e in effects if e.request_id}
        ).values_list("pk", "number")
    )

    def row(e: Effect) -> dict:
        name = names.get(e.campaign_id, "new request")
        if e.request_id:
            name = f"{numbers.get(e.request_id, e.request_id)} ({name})"
        return {
            "campaign": e.campaign_id,
            "campaign_name": names.get(e.campaign_id, ""),
            "request": numbers.get(e.request_id) if e.request_id else None,
            "before_status": e.before_status,
            "after_status": e.after_status,
            "before_finish": e.before_finish,
            "after_finish": e.after_finish,
            "delta_hours": round(e.delta_s / 3600, 2) if e.delta_s is not None else None,
            "text": _text(name, e),
        }

    by_campaign = {e.campaign_id: e for e in effects if e.request_id is None}
    by_request = {e.request_id: e for e in effects if e.request_id}
    moved = []
    for c in Commitment.objects.filter(kind=MilestoneKind.ALL_EVENTS).filter(
        campaign_id__in=list(by_campaign)
    ) | Commitment.objects.filter(kind=MilestoneKind.ALL_EVENTS, request_id__in=list(by_request)):
        e = by_campaign.get(c.campaign_id) if c.campaign_id else by_request.get(c.request_id)
        before = _promise_status(c.promised_at, e.before_finish)
        after = _promise_status(c.promised_at, e.after_finish)
        if before != after:
            moved.append(
                {
                    "campaign": c.campaign_id,
                    "request": numbers.get(c.request_id) if c.request_id else None,
                    "promised_at": c.promised_at,
                    "before": before,
                    "after": after,
                }
            )
    return {
        "change": result.change,
        "campaign": campaign.pk if campaign else None,
        "subject": row(result.subject) if result.subject else None,
        "effects": [row(e) for e in result.effects],
        "commitments": moved,
        "computed_at": result.now,
    }


def effect_lines(answer: dict) -> list[str]:
    """The answer in words, as the page shows it and the decision records it."""
    lines = []
    if answer.get("subject"):
        lines.append(f"itself: {answer['subject']['text']}")
    lines += [e["text"] for e in answer["effects"]]
    for c in answer["commitments"]:
        who = c["request"] or f"campaign {c['campaign']}"
        promised = c["promised_at"].strftime("%Y-%m-%d %H:%M")
        lines.append(
            f"100 % of {who} promised {promised} UTC: "
            f"{c['before'].replace('_', ' ')} -> {c['after'].replace('_', ' ')}"
        )
    return lines


def run_approval(target: ProductionRequest) -> dict:
    """Before an approval: the request as a campaign of its own from now (as the approval's
    forecast assumes); only a submitted request can be approved."""
    if target.state != RequestState.SUBMITTED:
        raise ValidationError(
            {"request": [f"{target.number} is {target.get_state_display().lower()}, not submitted"]}
        )
    try:
        result = what_if("approve", requests=[target])
    except WhatIfError as exc:
        raise ValidationError({"request": [str(exc)]}) from exc
    return {**payload(None, result), "request": target.number}


def run(campaign: Campaign, params) -> dict:
    """Parse the query, project, answer; a bad query is a 400 naming the parameter."""
    change = params.get("change", "")
    if change not in ("launch", "priority", "schedule"):
        raise ValidationError({"change": ["one of launch, priority, schedule"]})
    requests = None
    if change == "schedule":
        raw = [v for v in params.get("requests", "").split(",") if v.strip()]
        if not raw or len(raw) > MAX_REQUESTS or not all(v.strip().isdigit() for v in raw):
            raise ValidationError(
                {"requests": [f"1 to {MAX_REQUESTS} request ids, comma separated"]}
            )
        ids = {int(v) for v in raw}
        requests = list(
            ProductionRequest.objects.filter(
                pk__in=ids, experiment_id=campaign.experiment_id, state=RequestState.APPROVED
            ).select_related("experiment")
        )
        missing = ids - {r.pk for r in requests}
        if missing:
            raise ValidationError(
                {"requests": [f"not approved requests of {campaign.experiment}: {sorted(missing)}"]}
            )
    try:
        result = what_if(change, campaign.pk, priority=params.get("priority"), requests=requests)
    except WhatIfError as exc:
        raise ValidationError({"change": [str(exc)]}) from exc
    return payload(campaign, result)


def approval_effect(target: ProductionRequest) -> list[str]:
    """What approving ``target`` does to everyone else, in words: computed at an approval
    nobody was shown it before (``requests_app.extensions``)."""
    return effect_lines(run_approval(target))


def decision_effect(decision: dict) -> list[str]:
    """A campaign decision's effect in words (``campaigns.extensions``), ``decision`` as
    the decision page signs it; computed at a launch, a priority change or a scheduling
    nobody was shown it before."""
    campaign = Campaign.objects.select_related("experiment").get(pk=decision["campaign"])
    params = {
        "change": decision["change"],
        "priority": decision.get("priority", ""),
        "requests": ",".join(str(pk) for pk in decision.get("requests", ())),
    }
    return effect_lines(run(campaign, params))


class CampaignWhatIfView(APIView):
    """What a decision on a campaign would do to every other campaign and request."""

    @extend_schema(
        operation_id="campaigns_what_if_retrieve",
        summary="What a launch, priority change or scheduling would do to everyone else",
        description="The scheduler's projection run forward on the live state with and "
        "without the change: every campaign and request whose projected finish or status "
        "moves, and the 100 % commitments that would change status. Operators only. "
        "Nothing is changed.",
        tags=["campaigns"],
        parameters=[
            OpenApiParameter("id", int, OpenApiParameter.PATH),
            OpenApiParameter(
                "change", OpenApiTypes.STR, enum=["launch", "priority", "schedule"], required=True
            ),
            OpenApiParameter(
                "priority",
                OpenApiTypes.STR,
                enum=list(PRIORITY_WEIGHT),
                description="With change=priority: the new priority.",
            ),
            OpenApiParameter(
                "requests",
                OpenApiTypes.STR,
                description="With change=schedule: ids of approved requests, comma separated.",
            ),
        ],
        responses={
            200: WhatIfSerializer,
            400: ProblemSerializer,
            403: ProblemSerializer,
            404: ProblemSerializer,
        },
    )
    def get(self, request: Request, id: int) -> Response:
        if not is_operator(request.user):
            raise PermissionDenied("Only OPOS operators ask what a decision would do.")
        campaign = get_object_or_404(Campaign.objects.select_related("experiment"), pk=id)
        return Response(WhatIfSerializer(run(campaign, request.query_params)).data)


class RequestWhatIfView(APIView):
    """What approving a submitted request would do to every running campaign and request."""

    @extend_schema(
        operation_id="requests_what_if_retrieve",
        summary="What approving a request would do to everyone else",
        description="`id` is the request's id or its number. The request is projected as a "
        "campaign of its own from now (as the approval's forecast assumes), with the "
        "scheduler's projection run forward on the live state with and without it. "
        "Operators only; the request must be submitted. Nothing is changed.",
        tags=["requests"],
        parameters=[OpenApiParameter("id", str, OpenApiParameter.PATH)],
        responses={
            200: WhatIfSerializer,
            400: ProblemSerializer,
            403: ProblemSerializer,
            404: ProblemSerializer,
        },
    )
    def get(self, request: Request, id: str) -> Response:
        if not is_operator(request.user):
            raise PermissionDenied("Only OPOS operators ask what a decision would do.")
        key = "pk" if id.isdigit() else "number"
        target = get_object_or_404(
            ProductionRequest.objects.select_related("experiment"), **{key: id}
        )
        return Response(WhatIfSerializer(run_approval(target)).data)

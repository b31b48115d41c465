"""``/api/v1/campaigns/`` (workflow templates: ``templates.py``).

Thin: querysets come from ``visible_to`` (a campaign the caller may not see
is a 404, never a 403), every write goes through a service, and the
services' refusals become ``{"detail": ..., "reasons": [...]}`` answers:
403 when the role may not, 409 when the state forbids, 400 for bad input.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import filters, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from common.api_errors import FIELD_ERRORS, TRANSITION_STATUS, Problem, ProblemSerializer
from common.parsers import BoundedJSONParser
from experiments.models.visibility import is_operator

from ..execution.recovery import recover_campaign
from ..models import BatchControl, Campaign, CampaignRequest, ControlState
from ..services import (
    CampaignError,
    campaign_action,
    create_campaign,
    remove_request,
    schedule_requests,
    update_campaign,
)
from ..services.controls import with_control_counts
from ..services.overview import campaign_plan, with_counts
from .filtersets import CampaignFilterSet
from .serializers import (
    ActionSerializer,
    BatchControlSerializer,
    CampaignCreateSerializer,
    CampaignSerializer,
    CampaignUpdateSerializer,
    PlanSerializer,
    RemoveRequestSerializer,
    ScheduleResultSerializer,
    ScheduleSerializer,
    plan_payload,
)

REFUSED = {403: ProblemSerializer, 404: ProblemSerializer, 409: ProblemSerializer}
# 400: messages keyed by field, or a refusal with its reasons.
FIELD_OR_PROBLEM = {400: FIELD_ERRORS}


@contextmanager
def campaign_errors() -> Iterator[None]:
    """A refused use case as an HTTP answer with its reasons."""
    try:
        yield
    except CampaignError as exc:
        raise Problem(exc.detail, exc.reasons, TRANSITION_STATUS.get(exc.kind, 409)) from exc


def _operator_only(user, what: str) -> None:
    if not is_operator(user):
        raise Problem(f"Only OPOS operators may {what}.", [], status.HTTP_403_FORBIDDEN)


@extend_schema_view(
    list=extend_schema(
        summary="Campaigns visible to the caller",
        description="Operators see every campaign; members of an experiment see its campaigns.",
    ),
    retrieve=extend_schema(summary="One campaign", responses={200: CampaignSerializer, **REFUSED}),
    create=extend_schema(
        summary="Create a campaign (operators)",
        request=CampaignCreateSerializer,
        responses={201: CampaignSerializer, **FIELD_OR_PROBLEM, **REFUSED},
    ),
    partial_update=extend_schema(
        summary="Change a campaign (operators)",
        description=(
            "Name, description, priority, deadline, throttle, backend. A priority or"
            " deadline change needs a `reason`; every change is recorded with the old and"
            " new values."
        ),
        request=CampaignUpdateSerializer,
        responses={200: CampaignSerializer, **FIELD_OR_PROBLEM, **REFUSED},
    ),
)
class CampaignViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Campaigns: production rounds with a deadline, and the plan of their requests."""

    serializer_class = CampaignSerializer
    filter_backends = [DjangoFilterBackend, filters.SearchFilter]
    filterset_class = CampaignFilterSet
    search_fields = ["name", "description"]
    parser_classes = [BoundedJSONParser]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        links = CampaignRequest.objects.select_related("request").order_by(
            "request__deadline", "request_id"
        )
        # Two queries per page: campaigns with their job counts summed from
        # the stage counters, then the requests of all of them.
        return (
            with_control_counts(with_counts(Campaign.objects.visible_to(self.request.user)))
            .select_related("experiment", "created_by")
            .prefetch_related(Prefetch("links", queryset=links))
            .order_by("deadline", "id")
        )

    def _render(self, pk: int) -> dict:
        return CampaignSerializer(self.get_queryset().get(pk=pk)).data

    def create(self, request, *args, **kwargs):
        _operator_only(request.user, "create campaigns")
        payload = CampaignCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with campaign_errors():
            campaign = create_campaign(request.user, **payload.validated_data)
        return Response(self._render(campaign.pk), status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        campaign = self.get_object()
        _operator_only(request.user, "change campaigns")
        payload = CampaignUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        changes = dict(payload.validated_data)
        reason = changes.pop("reason", "")
        with campaign_errors():
            update_campaign(campaign, request.user, changes, reason)
        return Response(self._render(campaign.pk))

    @extend_schema(
        summary="Schedule approved requests into the campaign (operators)",
        description=(
            "Expands every sample into stages and planned jobs in one transaction and moves"
            " each request to `scheduled`. Refused as a whole, naming each problem."
        ),
        request=ScheduleSerializer,
        responses={200: ScheduleResultSerializer, **FIELD_OR_PROBLEM, **REFUSED},
    )
    @action(detail=True, methods=["post"])
    def schedule(self, request, pk=None):
        campaign = self.get_object()
        payload = ScheduleSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with campaign_errors():
            result = schedule_requests(
                campaign,
                payload.validated_data["requests"],
                request.user,
                payload.validated_data.get("note", ""),
            )
        return Response(
            ScheduleResultSerializer(
                {
                    "campaign": campaign.pk,
                    "scheduled": [r.number for r in result.requests],
                    "stages": result.stages,
                    "jobs": result.jobs,
                }
            ).data
        )

    @extend_schema(
        summary="Launch, pause, resume, cancel or recover (operators)",
        description=(
            "`cancel` cancels every job not yet submitted and asks execution to cancel what"
            " is queued or running; requests that never started return to approved."
            " `recover` (optionally with `stage`) resubmits the jobs that failed for good and"
            " those whose outputs are missing, each as a new attempt linked to its parent;"
            " stages whose output dataset is closed or retired are left out (409 when the"
            " `stage` asked for is one of them)."
        ),
        request=ActionSerializer,
        responses={200: CampaignSerializer, **FIELD_OR_PROBLEM, **REFUSED},
    )
    @action(detail=True, methods=["post"])
    def actions(self, request, pk=None):
        campaign = self.get_object()
        payload = ActionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with campaign_errors():
            if payload.validated_data["action"] == "recover":
                recover_campaign(
                    campaign,
                    request.user,
                    payload.validated_data.get("stage"),
                    payload.validated_data.get("note", ""),
                )
            else:
                campaign_action(
                    campaign,
                    payload.validated_data["action"],
                    request.user,
                    payload.validated_data.get("note", ""),
                )
        return Response(self._render(campaign.pk))

    @extend_schema(
        summary="Take a request that has not started out of the campaign (operators)",
        description=(
            "Its planned stages and jobs are deleted and the request returns to approved;"
            " a request with jobs already submitted is refused (409)."
        ),
        request=RemoveRequestSerializer,
        responses={200: CampaignSerializer, **FIELD_OR_PROBLEM, **REFUSED},
    )
    @action(detail=True, methods=["post"], url_path="remove")
    def remove(self, request, pk=None):
        campaign = self.get_object()
        payload = RemoveRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with campaign_errors():
            remove_request(
                campaign,
                payload.validated_data["request"],
                request.user,
                payload.validated_data.get("reason", ""),
            )
        return Response(self._render(campaign.pk))

    @extend_schema(
        summary="The plan: stages, jobs by state, why waiting, projected finish",
        responses={200: PlanSerializer, 404: ProblemSerializer},
    )
    @action(detail=True, methods=["get"])
    def plan(self, request, pk=None):
        campaign = self.get_object()
        return Response(PlanSerializer(plan_payload(campaign_plan(campaign))).data)

    @extend_schema(
        summary="Controls sent to jobs queued at the batch system, and each job's answer",
        description=(
            "Holds (pause), releases (resume), priority changes and moves (partition, account,"
            " QOS) of this campaign's queued jobs, newest first, at most 500: pending ones are"
            " sent by the next poll cycle; failed ones were refused by the batch system"
            " `OPOS_CONTROL_ATTEMPTS` times (its message in `detail`). `?state=` filters."
        ),
        responses={
            200: BatchControlSerializer(many=True),
            400: ProblemSerializer,
            404: ProblemSerializer,
        },
    )
    @action(detail=True, methods=["get"], url_path="batch-controls")
    def batch_controls(self, request, pk=None):
        # Not get_object(): the campaign list's filters would read ?state= as theirs.
        if not str(pk).isdigit() or int(pk) > 2**63 - 1:
            raise Http404
        campaign = get_object_or_404(Campaign.objects.visible_to(request.user), pk=pk)
        rows = BatchControl.objects.filter(campaign=campaign).select_related("job")
        state = request.query_params.get("state")
        if state:
            if state not in ControlState.values:
                raise ValidationError(
                    {"state": [f"choose one of {', '.join(ControlState.values)}"]}
                )
            rows = rows.filter(state=state)
        return Response(BatchControlSerializer(rows.order_by("-id")[:500], many=True).data)

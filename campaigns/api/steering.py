"""Steering endpoints: recovery with overrides, force-complete, test launches, extensions,
clones.

Actions on campaigns (``/api/v1/campaigns/{id}/recover/``, ``/force-complete/``,
``/launch-full/``, ``/settings/``) and on requests (``/api/v1/requests/{id}/clone/``,
``/force-complete/``, ``/extensions/``), registered beside the main viewsets under the same
prefixes, plus ``/api/v1/extensions/`` to approve or reject. Thin like the rest: objects
come from ``visible_to`` (another experiment's are a 404), every write goes through a
service, refusals are ``{"detail": ..., "reasons": [...]}`` with 400, 403 or 409.
"""

from __future__ import annotations

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from common.api_errors import FIELD_ERRORS, ProblemSerializer, service_errors
from common.parsers import BoundedJSONParser
from requests_app.choices import Priority
from requests_app.models import ProductionRequest
from requests_app.services import cloning
from requests_app.services.numbering import NUMBER_PATTERN

from ..choices import ExtensionState
from ..execution.recovery import recover_campaign
from ..models import Campaign, Extension
from ..services import completion, extension, testlaunch
from ..services.overrides import Overrides, clean_overrides
from .views import CampaignViewSet, campaign_errors

REFUSED = {403: ProblemSerializer, 404: ProblemSerializer, 409: ProblemSerializer}
# A 400 is either the serializer's messages by field or a refusal's problem: both objects.
BAD = {400: FIELD_ERRORS}


class RecoverSerializer(serializers.Serializer):
    stage = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="Only this stage."
    )
    jobs = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        max_length=10000,
        help_text="Only these jobs (ids of the latest attempts; failed, lost or cancelled).",
    )
    memory_mb = serializers.IntegerField(
        required=False, allow_null=True, help_text="Memory of the new attempts (MB)."
    )
    walltime_s = serializers.IntegerField(
        required=False, allow_null=True, help_text="Walltime of the new attempts (seconds)."
    )
    parameters = serializers.DictField(
        required=False,
        help_text="Parameter values for the new attempts, checked against the template.",
    )
    note = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class RecoveryResultSerializer(serializers.Serializer):
    campaign = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="Jobs that had failed for good, resubmitted.")
    missing_outputs = serializers.IntegerField()
    jobs = serializers.ListField(child=serializers.IntegerField(), help_text="New attempts.")
    overrides = serializers.DictField()


class AbandonReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=5000, help_text="Why the rest is abandoned (recorded, sent to the requester)."
    )


class CompletionResultSerializer(serializers.Serializer):
    campaign = serializers.IntegerField()
    campaign_state = serializers.CharField()
    requests = serializers.ListField(child=serializers.CharField())
    done_pct = serializers.FloatField()
    threshold_pct = serializers.IntegerField()
    cancelled_jobs = serializers.IntegerField()


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class SettingsSerializer(serializers.Serializer):
    test_jobs = serializers.IntegerField(
        required=False, min_value=0, max_value=testlaunch.MAX_TEST_JOBS
    )
    test_auto_continue = serializers.BooleanField(required=False)
    completion_pct = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=100
    )


class CloneSerializer(serializers.Serializer):
    experiment = serializers.CharField(required=False, help_text="Slug; default: the same.")
    physics_group = serializers.CharField(required=False)
    ticket = serializers.CharField(required=False, max_length=40)
    title = serializers.CharField(required=False, max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    deadline = serializers.DateField(required=False)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)


class ExtensionInputSerializer(serializers.Serializer):
    sample = serializers.CharField(
        required=False, help_text="Name or id; may be left out when the request has one."
    )
    events = serializers.IntegerField(min_value=1, max_value=2**62)
    reason = serializers.CharField(max_length=5000)


class ExtensionSerializer(serializers.ModelSerializer):
    request = serializers.SlugRelatedField(slug_field="number", read_only=True)
    sample = serializers.SlugRelatedField(slug_field="name", read_only=True)
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Extension
        fields = [
            "id",
            "request",
            "sample",
            "events",
            "state",
            "reason",
            "requested_by",
            "decided_by",
            "decision_note",
            "jobs_added",
            "created",
            "decided",
        ]
        read_only_fields = fields


def _completion_answer(result: completion.CompletionResult) -> dict:
    result.campaign.refresh_from_db(fields=["state"])
    return CompletionResultSerializer(
        {
            "campaign": result.campaign.pk,
            "campaign_state": result.campaign.state,
            "requests": result.requests,
            "done_pct": round(result.percent, 2),
            "threshold_pct": result.threshold,
            "cancelled_jobs": result.cancelled_jobs,
        }
    ).data


class CampaignSteeringViewSet(viewsets.GenericViewSet):
    """Steering a campaign: recovery with overrides, force-complete, test launches."""

    parser_classes = [BoundedJSONParser]
    serializer_class = RecoverSerializer

    def get_queryset(self):
        return Campaign.objects.visible_to(self.request.user)

    def _render(self, pk: int) -> dict:
        view = CampaignViewSet(request=self.request, format_kwarg=None)
        return view._render(pk)

    @extend_schema(
        summary="Recover with overrides (operators)",
        description=(
            "Resubmits the jobs that failed for good and those whose outputs are missing"
            " (of the campaign, of `stage`, or only `jobs`), each as a new attempt. "
            "`memory_mb`, `walltime_s` and `parameters` apply to those attempts only;"
            " parameters are checked against the workflow template (a name applies to the"
            " stages that declare it). Recorded with the overrides as a campaign event."
        ),
        request=RecoverSerializer,
        responses={200: RecoveryResultSerializer, **BAD, **REFUSED},
    )
    @action(detail=True, methods=["post"])
    def recover(self, request, pk=None):
        campaign = self.get_object()
        payload = RecoverSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        with campaign_errors():
            overrides: Overrides = clean_overrides(data)
            result = recover_campaign(
                campaign,
                request.user,
                data.get("stage"),
                data.get("note", ""),
                jobs=data.get("jobs"),
                overrides=overrides,
            )
        return Response(
            RecoveryResultSerializer(
                {
                    "campaign": campaign.pk,
                    "failed": result.failed,
                    "missing_outputs": result.missing_outputs,
                    "jobs": result.jobs,
                    "overrides": result.overrides,
                }
            ).data
        )

    @extend_schema(
        summary="Force-complete the campaign (operators)",
        description=(
            "Allowed once the final stages' jobs done reach the completion threshold (the"
            " campaign's `completion_pct`, else the templates' default). Every running"
            " request is completed with the rest abandoned: jobs not submitted are"
            " cancelled, those at the batch system are cancelled by execution; the"
            " requesters are told. 409 below the threshold, with the figures."
        ),
        request=AbandonReasonSerializer,
        responses={200: CompletionResultSerializer, **BAD, **REFUSED},
    )
    @action(detail=True, methods=["post"], url_path="force-complete")
    def force_complete(self, request, pk=None):
        campaign = self.get_object()
        payload = AbandonReasonSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with campaign_errors():
            result = completion.force_complete_campaign(
                campaign, request.user, payload.validated_data["reason"]
            )
        return Response(_completion_answer(result))

    @extend_schema(
        summary="Go on from the test launch to the full launch (operators)",
        description=(
            "After the test jobs passed; after a failed test only with a `note` (the"
            " paused campaign becomes active again)."
        ),
        request=NoteSerializer,
        responses={200: None, **BAD, **REFUSED},
    )
    @action(detail=True, methods=["post"], url_path="launch-full")
    def launch_full(self, request, pk=None):
        campaign = self.get_object()
        payload = NoteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with campaign_errors():
            testlaunch.launch_full(campaign, request.user, payload.validated_data.get("note", ""))
        return Response(self._render(campaign.pk))

    @extend_schema(
        summary="Test launch and force-complete settings (operators)",
        description=(
            "`test_jobs` (jobs of each stage submitted first at the launch; 0 for none,"
            " changeable while planned), `test_auto_continue` (go on by itself once they"
            " succeeded), `completion_pct` (force-complete threshold; null for the"
            " templates' default). Recorded as an edit."
        ),
        request=SettingsSerializer,
        responses={200: None, **BAD, **REFUSED},
    )
    @action(detail=True, methods=["post"], url_path="settings")
    def steering_settings(self, request, pk=None):
        campaign = self.get_object()
        payload = SettingsSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        with campaign_errors():
            testlaunch.update_test_settings(
                campaign,
                request.user,
                test_jobs=data.get("test_jobs"),
                test_auto_continue=data.get("test_auto_continue"),
                completion_pct=data.get("completion_pct", "unset"),
            )
        return Response(self._render(campaign.pk))


class RequestSteeringViewSet(viewsets.GenericViewSet):
    """Steering a request: clone, force-complete, extensions."""

    parser_classes = [BoundedJSONParser]
    serializer_class = CloneSerializer
    lookup_value_regex = rf"[0-9]+|{NUMBER_PATTERN}"

    def get_queryset(self):
        return ProductionRequest.objects.visible_to(self.request.user).select_related("experiment")

    def get_object(self) -> ProductionRequest:
        value = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        key = "pk" if value.isdigit() else "number"
        return get_object_or_404(self.get_queryset(), **{key: value})

    def _rendered(self, pk: int) -> dict:
        from requests_app.api.requests import ProductionRequestViewSet

        view = ProductionRequestViewSet(request=self.request, format_kwarg=None)
        return view._render(view._fresh(pk))

    @extend_schema(
        summary="Clone into a new draft",
        description=(
            "Any state; into any experiment the caller may file for (`experiment`: the"
            " working group is taken by slug, templates by name, output datasets move to"
            " that experiment's namespace). The other fields replace the source's. The"
            " clone passes every check a new request does (400 naming each field)."
        ),
        request=CloneSerializer,
        responses={201: None, 400: FIELD_ERRORS, 403: ProblemSerializer, 404: ProblemSerializer},
    )
    @action(detail=True, methods=["post"])
    def clone(self, request, pk=None):
        source = self.get_object()
        payload = CloneSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with service_errors():
            copy = cloning.clone_request(request.user, source, dict(payload.validated_data))
        return Response(self._rendered(copy.pk), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Force-complete the request (operators)",
        description=(
            "Allowed once its final stages' jobs done reach the completion threshold; the"
            " rest is abandoned with the reason and the requester is told. 409 below it."
        ),
        request=AbandonReasonSerializer,
        responses={200: CompletionResultSerializer, **BAD, **REFUSED},
    )
    @action(detail=True, methods=["post"], url_path="force-complete")
    def force_complete(self, request, pk=None):
        obj = self.get_object()
        payload = AbandonReasonSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with campaign_errors():
            result = completion.force_complete_request(
                obj, request.user, payload.validated_data["reason"]
            )
        return Response(_completion_answer(result))

    @extend_schema(
        methods=["GET"],
        summary="Extensions of the request",
        responses={200: ExtensionSerializer(many=True), 404: ProblemSerializer},
    )
    @extend_schema(
        methods=["POST"],
        summary="File an extension: more events for a running Monte Carlo sample",
        description=(
            "Liaisons of the experiment and operators. The extension waits for an"
            " operator's approval (`/api/v1/extensions/{id}/approve/`), which appends the"
            " jobs to the plan."
        ),
        request=ExtensionInputSerializer,
        responses={201: ExtensionSerializer, **BAD, **REFUSED},
    )
    # A request has a handful of extensions: the list is answered whole, not in pages.
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def extensions(self, request, pk=None):
        obj = self.get_object()
        if request.method == "GET":
            rows = Extension.objects.filter(request=obj).select_related(
                "request", "sample", "requested_by", "decided_by"
            )
            return Response(ExtensionSerializer(rows, many=True).data)
        payload = ExtensionInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        with campaign_errors():
            filed = extension.file_extension(
                obj, request.user, data["events"], data["reason"], data.get("sample")
            )
        return Response(ExtensionSerializer(filed).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(summary="Extensions the caller may see"),
    retrieve=extend_schema(summary="One extension"),
)
class ExtensionViewSet(viewsets.ReadOnlyModelViewSet):
    """Extensions of running requests, and their decisions."""

    serializer_class = ExtensionSerializer
    parser_classes = [BoundedJSONParser]

    def get_queryset(self):
        rows = Extension.objects.visible_to(self.request.user).select_related(
            "request", "sample", "requested_by", "decided_by"
        )
        state = self.request.query_params.get("state")
        if state in ExtensionState.values:
            rows = rows.filter(state=state)
        return rows.order_by("-created", "-id")

    @extend_schema(
        summary="Approve: append the jobs to the plan (operators)",
        request=NoteSerializer,
        responses={200: ExtensionSerializer, **BAD, **REFUSED},
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        target = self.get_object()
        payload = NoteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with campaign_errors(), transaction.atomic():
            done = extension.approve_extension(
                target, request.user, payload.validated_data.get("note", "")
            )
        return Response(ExtensionSerializer(done).data)

    @extend_schema(
        summary="Reject, saying why (operators)",
        request=NoteSerializer,
        responses={200: ExtensionSerializer, **BAD, **REFUSED},
    )
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        target = self.get_object()
        payload = NoteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with campaign_errors():
            done = extension.reject_extension(
                target, request.user, payload.validated_data.get("note", "")
            )
        return Response(ExtensionSerializer(done).data)


def register(router) -> None:
    """Beside the campaign and request viewsets: only these actions' routes are added."""
    router.register("campaigns", CampaignSteeringViewSet, basename="campaign-steering")
    router.register("requests", RequestSteeringViewSet, basename="request-steering")
    router.register("extensions", ExtensionViewSet, basename="extension")

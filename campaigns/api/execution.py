"""``/api/v1/jobs/``, ``/submissions/``, ``/stuck/`` and ``/failure-rules/``.

Thin like the rest of the API: querysets from ``visible_to`` (another experiment's rows are
a 404, never a 403), a fixed number of queries per page whatever the data size, writes only
through the execution services, refusals as ``{"detail": ..., "reasons": [...]}``.
"""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import F
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import (
    extend_schema,
    extend_schema_field,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import filters, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from common.api_errors import FIELD_ERRORS, Problem, ProblemSerializer, service_errors
from common.filters import CharInFilter, ListWidget
from common.parsers import BoundedJSONParser
from experiments.models import WorkflowTemplate
from experiments.models.visibility import is_operator

from .. import conf as campaigns_conf
from ..choices import FailureClass, JobState, SubmissionState
from ..execution import failures, logs
from ..execution.stuck import cancel_and_retry
from ..models import FailureRule, Job, StuckFlag, StuckKind, Submission
from ..services import failure_rules
from .views import campaign_errors

REFUSED = {403: ProblemSerializer, 404: ProblemSerializer, 409: ProblemSerializer}


class IdFilter(django_filters.NumberFilter):
    """A whole number within the database's range: a bigger one is a 400, not a crash."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


# --- jobs -----------------------------------------------------------------------------------------


class JobFilterSet(django_filters.FilterSet):
    campaign = IdFilter(field_name="stage__campaign_id")
    stage = IdFilter(field_name="stage_id")
    state = django_filters.MultipleChoiceFilter(
        choices=JobState.choices, widget=ListWidget, help_text="One or several job states."
    )
    failure_class = django_filters.MultipleChoiceFilter(
        choices=FailureClass.choices, widget=ListWidget, help_text="One or several classes."
    )
    backend = CharInFilter(field_name="backend")
    index = IdFilter()

    class Meta:
        model = Job
        fields = ["campaign", "stage", "state", "failure_class", "backend", "index"]


class OperatorOnlyFields:
    """Serializer mixin: ``operator_only`` fields are null for anyone but operators.

    What a job printed and where it ran (its folder, its stderr, the failure reason quoting
    it, the batch system's error text) is for the operators, who read the job logs; an
    experiment's members see a job's state, exit code and failure class. The fields stay in
    every answer (null) so that the schema is one for all callers.
    """

    operator_only: tuple[str, ...] = ()

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or not is_operator(request.user):
            for name in self.operator_only:
                if name in data:
                    data[name] = None
        return data


OPERATORS_ONLY = "Operators only: null for others."


class JobSerializer(OperatorOnlyFields, serializers.ModelSerializer):
    operator_only = ("failure_reason", "workdir", "stderr_tail")
    campaign = serializers.IntegerField(read_only=True)
    failure_reason = serializers.CharField(
        read_only=True, allow_null=True, help_text=OPERATORS_ONLY
    )
    # Empty until the job is submitted / unless it failed (the schema's enum says so too).
    backend = serializers.CharField(
        read_only=True, help_text="The batch endpoint it was submitted to; empty until then."
    )
    failure_class = serializers.ChoiceField(
        choices=FailureClass.choices, allow_blank=True, read_only=True
    )

    class Meta:
        model = Job
        fields = [
            "id",
            "campaign",
            "stage",
            "index",
            "attempt",
            "parent",
            "state",
            "backend",
            "batch_id",
            "submission",
            "exit_code",
            "failure_class",
            "failure_reason",
            "events",
            "memory_mb",
            "walltime_s",
            "queued_at",
            "started",
            "finished",
        ]
        read_only_fields = fields


class JobDetailSerializer(JobSerializer):
    operator_only = (*JobSerializer.operator_only, "host", "batch_url", "stdout_tail")
    workdir = serializers.CharField(read_only=True, allow_null=True, help_text=OPERATORS_ONLY)
    stderr_tail = serializers.SerializerMethodField(help_text=OPERATORS_ONLY)
    exit_meaning = serializers.SerializerMethodField(
        help_text="The exit status with the signal it stands for, e.g. "
        '"137 (SIGKILL: killed: by the batch system for memory, or preemption)".'
    )
    # Where and how it ran, for diagnosis.
    host = serializers.SerializerMethodField(help_text=OPERATORS_ONLY)
    batch_url = serializers.SerializerMethodField(
        help_text="The batch system's view of the job, where configured. " + OPERATORS_ONLY
    )
    stdout_tail = serializers.SerializerMethodField(help_text=OPERATORS_ONLY)

    class Meta(JobSerializer.Meta):
        fields = [
            *JobSerializer.Meta.fields,
            "exit_meaning",
            "workdir",
            "stderr_tail",
            "host",
            "batch_url",
            "stdout_tail",
        ]
        read_only_fields = fields

    def _operator(self) -> bool:
        request = self.context.get("request")
        return request is not None and is_operator(request.user)

    # Logs are not even read from disk for others (``operator_only`` nulls them anyway).
    @extend_schema_field({"type": "string", "nullable": True})
    def get_stderr_tail(self, job: Job) -> str | None:
        return logs.stderr_tail(job.workdir, 2000, job.batch_id) if self._operator() else None

    def get_exit_meaning(self, job: Job) -> str:
        return failures.describe_exit(job.exit_code)

    @extend_schema_field({"type": "string", "nullable": True})
    def get_host(self, job: Job) -> str | None:
        return (job.host or logs.job_host(job.workdir)) if self._operator() else None

    @extend_schema_field({"type": "string", "nullable": True})
    def get_batch_url(self, job: Job) -> str | None:
        return campaigns_conf.batch_job_url(job.backend, job.batch_id) if self._operator() else None

    @extend_schema_field({"type": "string", "nullable": True})
    def get_stdout_tail(self, job: Job) -> str | None:
        return logs.stdout_tail(job.workdir, 2000, job.batch_id) if self._operator() else None


class CancelRetrySerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=500)


@extend_schema_view(
    list=extend_schema(
        summary="Jobs visible to the caller",
        description="Every attempt is a job; filter by campaign, stage, state(s), failure class.",
    ),
    retrieve=extend_schema(
        summary="One job; for operators also its folder and the tail of its stderr",
        responses={200: JobDetailSerializer, 404: ProblemSerializer},
    ),
)
class JobViewSet(viewsets.ReadOnlyModelViewSet):
    """Jobs: one element of a stage's work per attempt."""

    serializer_class = JobSerializer
    filter_backends = [DjangoFilterBackend, filters.OrderingFilter]
    filterset_class = JobFilterSet
    ordering_fields = ["id", "index", "attempt", "started", "finished"]
    ordering = ["id"]
    pagination_class = Pagination

    def get_queryset(self):
        return Job.objects.visible_to(self.request.user).annotate(campaign=F("stage__campaign_id"))

    def get_serializer_class(self):
        return JobDetailSerializer if self.action == "retrieve" else JobSerializer

    @extend_schema(
        summary="Cancel at the batch system and retry (operators)",
        request=CancelRetrySerializer,
        responses={
            200: inline_serializer(
                "CancelRetryResult",
                {
                    "cancelled": serializers.ListField(child=serializers.IntegerField()),
                    "retries": serializers.ListField(child=serializers.IntegerField()),
                },
            ),
            **REFUSED,
        },
    )
    @action(
        detail=True, methods=["post"], url_path="cancel-retry", parser_classes=[BoundedJSONParser]
    )
    def cancel_retry(self, request, pk=None):
        job = self.get_object()
        payload = CancelRetrySerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with campaign_errors():
            result = cancel_and_retry(
                request.user, [job.pk], note=payload.validated_data.get("note", "")
            )
        if not result.cancelled:
            raise Problem(
                "The job is not in flight (it finished or was never submitted).",
                [f"state: {job.state}"],
                status.HTTP_409_CONFLICT,
            )
        return Response({"cancelled": result.cancelled, "retries": result.retries})


# --- submissions --------------------------------------------------------------------------------


class SubmissionFilterSet(django_filters.FilterSet):
    campaign = IdFilter(field_name="stage__campaign_id")
    stage = IdFilter(field_name="stage_id")
    state = django_filters.MultipleChoiceFilter(choices=SubmissionState.choices, widget=ListWidget)

    class Meta:
        model = Submission
        fields = ["campaign", "stage", "state"]


class SubmissionSerializer(OperatorOnlyFields, serializers.ModelSerializer):
    operator_only = ("error",)
    campaign = serializers.IntegerField(read_only=True)
    error = serializers.CharField(read_only=True, allow_null=True, help_text=OPERATORS_ONLY)

    class Meta:
        model = Submission
        fields = [
            "id",
            "token",
            "campaign",
            "stage",
            "backend",
            "state",
            "size",
            "batch_id",
            "error",
            "created",
            "submitted_at",
        ]
        read_only_fields = fields


@extend_schema_view(
    list=extend_schema(summary="Batch submissions (arrays) visible to the caller"),
    retrieve=extend_schema(summary="One submission"),
)
class SubmissionViewSet(viewsets.ReadOnlyModelViewSet):
    """Submissions: one batch array each, with its token and state."""

    serializer_class = SubmissionSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = SubmissionFilterSet
    pagination_class = Pagination

    def get_queryset(self):
        return (
            Submission.objects.visible_to(self.request.user)
            .annotate(campaign=F("stage__campaign_id"))
            .order_by("-created", "-id")
        )


# --- stuck flags --------------------------------------------------------------------------------


class StuckFlagFilterSet(django_filters.FilterSet):
    campaign = IdFilter(field_name="campaign_id")
    stage = IdFilter(field_name="stage_id")
    kind = django_filters.MultipleChoiceFilter(choices=StuckKind.choices, widget=ListWidget)
    open = django_filters.BooleanFilter(
        field_name="resolved_at", lookup_expr="isnull", help_text="Only open (or resolved) flags."
    )

    class Meta:
        model = StuckFlag
        fields = ["campaign", "stage", "kind", "open"]


class StuckFlagSerializer(serializers.ModelSerializer):
    class Meta:
        model = StuckFlag
        fields = ["id", "campaign", "stage", "job", "kind", "reason", "created", "resolved_at"]
        read_only_fields = fields


@extend_schema_view(list=extend_schema(summary="Jobs and stages flagged as stuck"))
class StuckFlagViewSet(viewsets.ReadOnlyModelViewSet):
    """Stuck work with its reason; act with ``POST /jobs/{id}/cancel-retry/``."""

    serializer_class = StuckFlagSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = StuckFlagFilterSet
    pagination_class = Pagination

    def get_queryset(self):
        return StuckFlag.objects.visible_to(self.request.user).order_by("-created", "-id")


# --- failure rules ------------------------------------------------------------------------------


class FailureRuleSerializer(serializers.ModelSerializer):
    """The shape of a rule; its rules (one criterion at least, safe pattern, factor) are
    checked by the service, which the browser and the API share."""

    template = serializers.PrimaryKeyRelatedField(
        queryset=WorkflowTemplate.objects.all(),
        allow_null=True,
        required=False,
        help_text="The template's id; empty: the rule applies to every template.",
    )

    class Meta:
        model = FailureRule
        fields = ["id", *failure_rules.RULE_FIELDS]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            # A template the caller may not see is "does not exist", like any unknown id.
            self.fields["template"].queryset = WorkflowTemplate.objects.visible_to(request.user)


RULE_WRITE = {400: FIELD_ERRORS, **REFUSED}


@extend_schema_view(
    list=extend_schema(summary="Failure classification rules (per template, then general)"),
    retrieve=extend_schema(summary="One failure rule"),
    create=extend_schema(
        summary="Add a failure rule (operators; audited)",
        responses={201: FailureRuleSerializer, **RULE_WRITE},
    ),
    update=extend_schema(
        summary="Replace a failure rule (operators; audited with old and new values)",
        responses={200: FailureRuleSerializer, **RULE_WRITE},
    ),
    partial_update=extend_schema(
        summary="Change a failure rule (operators; audited with old and new values)",
        responses={200: FailureRuleSerializer, **RULE_WRITE},
    ),
    destroy=extend_schema(
        summary="Remove a failure rule (operators; audited)",
        responses={204: None, **REFUSED},
    ),
)
class FailureRuleViewSet(viewsets.ModelViewSet):
    """Rules that classify failures and decide retries; operators change them through the
    failure-rule service, which validates and audits every change."""

    serializer_class = FailureRuleSerializer
    pagination_class = Pagination
    parser_classes = [BoundedJSONParser]

    def get_queryset(self):
        templates = WorkflowTemplate.objects.visible_to(self.request.user)
        visible = FailureRule.objects.filter(template__in=templates) | FailureRule.objects.filter(
            template__isnull=True
        )
        return visible.order_by("template_id", "position", "id")

    def check_permissions(self, request):
        super().check_permissions(request)
        if request.method not in ("GET", "HEAD", "OPTIONS") and not is_operator(request.user):
            raise Problem(
                "Only OPOS operators change failure rules.", [], status.HTTP_403_FORBIDDEN
            )

    def create(self, request, *args, **kwargs):
        payload = self.get_serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with campaign_errors(), service_errors():
            rule = failure_rules.create_rule(request.user, **payload.validated_data)
        return Response(self.get_serializer(rule).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, partial=False, **kwargs):
        rule = self.get_object()
        payload = self.get_serializer(rule, data=request.data, partial=partial)
        payload.is_valid(raise_exception=True)
        with campaign_errors(), service_errors():
            rule = failure_rules.update_rule(request.user, rule, dict(payload.validated_data))
        return Response(self.get_serializer(rule).data)

    def destroy(self, request, *args, **kwargs):
        rule = self.get_object()
        with campaign_errors(), service_errors():
            failure_rules.delete_rule(request.user, rule)
        return Response(status=status.HTTP_204_NO_CONTENT)


def register(router) -> None:
    """Add the execution endpoints to the project router."""
    router.register("jobs", JobViewSet, basename="job")
    router.register("submissions", SubmissionViewSet, basename="submission")
    router.register("stuck", StuckFlagViewSet, basename="stuck-flag")
    router.register("failure-rules", FailureRuleViewSet, basename="failure-rule")

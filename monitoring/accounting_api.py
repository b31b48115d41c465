"""``/api/v1/accounting/``: the CPU-hour ledger, and ``/api/v1/accounting/allocations/``.

The ledger answers core hours used (succeeded) and wasted (failed, lost, cancelled
attempts) per experiment, working group, campaign and request over a period, and each
experiment's current allocation with the projection of its use to the period's end. Members
see their experiments' figures only (``visible_to``); operators see all and set allocations.
A fixed number of queries whatever the number of attempts.
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns.models import Job
from common.api_errors import FIELD_ERRORS, ProblemSerializer
from experiments.models import Experiment
from experiments.models.visibility import is_operator

from .models import Allocation
from .services import accounting
from .services.allocations import delete_allocation, save_allocation

MAX_PERIOD_DAYS = 3660


class UsageSerializer(serializers.Serializer):
    """What an experiment, working group, campaign or request used in the period."""

    id = serializers.IntegerField(allow_null=True)
    label = serializers.CharField(help_text="Slug, campaign name or request number.")
    name = serializers.CharField()
    experiment = serializers.CharField(help_text="The experiment's slug.")
    attempts = serializers.IntegerField(help_text="Attempts that ended in the period.")
    succeeded = serializers.IntegerField()
    wasted = serializers.IntegerField(help_text="Attempts failed, lost or cancelled.")
    measured = serializers.IntegerField(help_text="Attempts with the batch system's figures.")
    core_hours = serializers.FloatField(help_text="Cores reserved x wall time, all attempts.")
    succeeded_core_hours = serializers.FloatField()
    wasted_core_hours = serializers.FloatField()
    cpu_hours = serializers.FloatField(help_text="CPU time consumed (user + system).")
    efficiency = serializers.FloatField(allow_null=True, help_text="CPU hours / core hours.")
    max_rss_kb = serializers.IntegerField(allow_null=True, help_text="Peak memory of any attempt.")


class AllocationStatusSerializer(serializers.Serializer):
    """An experiment's current allocation and its use."""

    id = serializers.IntegerField(source="allocation.pk")
    experiment = serializers.CharField(source="allocation.experiment.slug")
    start = serializers.DateField(source="allocation.start")
    end = serializers.DateField(source="allocation.end")
    cpu_hours = serializers.IntegerField(
        source="allocation.cpu_hours", help_text="Core hours granted."
    )
    note = serializers.CharField(source="allocation.note")
    used_core_hours = serializers.FloatField(source="used.core_hours")
    succeeded_core_hours = serializers.FloatField(source="used.succeeded_core_hours")
    wasted_core_hours = serializers.FloatField(source="used.wasted_core_hours")
    used_percent = serializers.FloatField()
    elapsed_fraction = serializers.FloatField(help_text="Share of the period gone.")
    projected_core_hours = serializers.FloatField(
        allow_null=True, help_text="Use at the period's end at the average rate so far."
    )
    projected_percent = serializers.FloatField(allow_null=True)
    status = serializers.ChoiceField(
        choices=["ok", "at_risk", "over"],
        help_text="`over`: used more than granted; `at_risk`: will at the current rate.",
    )


class LedgerSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    total = UsageSerializer()
    experiments = UsageSerializer(many=True)
    groups = UsageSerializer(many=True)
    campaigns = UsageSerializer(many=True)
    requests = UsageSerializer(many=True)
    allocations = AllocationStatusSerializer(many=True)


def ledger_payload(ledger: accounting.Ledger) -> dict:
    return {
        "start": ledger.start,
        "end": ledger.end,
        "total": ledger.total(),
        "experiments": ledger.levels.get("experiment", []),
        "groups": ledger.levels.get("group", []),
        "campaigns": ledger.levels.get("campaign", []),
        "requests": ledger.levels.get("request", []),
        "allocations": ledger.allocations,
    }


def parse_period(params) -> tuple[dt.date | None, dt.date | None]:
    """``?start=`` and ``?end=`` (ISO dates), checked; a 400 naming what is wrong."""
    values: dict[str, dt.date | None] = {}
    for name in ("start", "end"):
        text = params.get(name)
        if not text:
            values[name] = None
            continue
        try:
            values[name] = dt.date.fromisoformat(text)
        except ValueError:
            raise ValidationError({name: [f"an ISO date (YYYY-MM-DD), not {text!r}"]}) from None
    start, end = values["start"], values["end"]
    if start and end:
        if end < start:
            raise ValidationError({"end": ["must be on or after start"]})
        if (end - start).days > MAX_PERIOD_DAYS:
            raise ValidationError({"end": [f"a period of at most {MAX_PERIOD_DAYS} days"]})
    return start, end


class LedgerView(APIView):
    """The CPU-hour ledger of the experiments the caller may see."""

    @extend_schema(
        operation_id="accounting_ledger",
        summary="CPU hours used and wasted per experiment, group, campaign and request",
        description="Attempts that ended in the period (default: this month to today), "
        "charged cores x wall time as the batch system measured it; with each visible "
        "experiment's current allocation and the projection to its end.",
        tags=["accounting"],
        parameters=[
            OpenApiParameter("experiment", str, description="Only this experiment (slug)."),
            OpenApiParameter("start", OpenApiTypes.DATE, description="First day (included)."),
            OpenApiParameter("end", OpenApiTypes.DATE, description="Last day (included)."),
        ],
        responses={200: LedgerSerializer, 400: FIELD_ERRORS, 404: ProblemSerializer},
    )
    def get(self, request: Request) -> Response:
        start, end = parse_period(request.query_params)
        jobs = Job.objects.visible_to(request.user)
        allocations = Allocation.objects.visible_to(request.user)
        slug = request.query_params.get("experiment")
        if slug:
            experiment = Experiment.objects.visible_to(request.user).filter(slug=slug).first()
            if experiment is None:
                raise Http404(f"no experiment {slug!r} you may see")
            jobs = jobs.filter(stage__campaign__experiment=experiment)
            allocations = allocations.filter(experiment=experiment)
        ledger = accounting.build_ledger(jobs, allocations, start, end)
        return Response(LedgerSerializer(ledger_payload(ledger)).data)


class AllocationSerializer(serializers.ModelSerializer):
    experiment = serializers.SlugRelatedField(
        slug_field="slug", queryset=Experiment.objects.all(), help_text="The experiment's slug."
    )
    created_by = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="Who set it (null: made outside the tracker's forms, e.g. a data import).",
    )

    class Meta:
        model = Allocation
        fields = ["id", "experiment", "start", "end", "cpu_hours", "note", "created_by", "created"]
        read_only_fields = ["id", "created_by", "created"]


class OperatorsWrite(BasePermission):
    """Everyone signed in reads (what they may see); operators set allocations."""

    message = "Only OPOS operators set allocations."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or is_operator(request.user)


@extend_schema_view(
    list=extend_schema(summary="Allocations of the experiments you may see", tags=["accounting"]),
    retrieve=extend_schema(summary="One allocation", tags=["accounting"]),
    create=extend_schema(
        summary="Set an allocation (operators)",
        description="Core hours for an experiment and period; periods of one experiment "
        "may not overlap.",
        tags=["accounting"],
    ),
    update=extend_schema(summary="Change an allocation (operators)", tags=["accounting"]),
    partial_update=extend_schema(summary="Change an allocation (operators)", tags=["accounting"]),
    destroy=extend_schema(summary="Remove an allocation (operators)", tags=["accounting"]),
)
class AllocationViewSet(viewsets.ModelViewSet):
    """CPU-hour allocations per experiment and period; every change is audited."""

    serializer_class = AllocationSerializer
    permission_classes = [OperatorsWrite]
    filterset_fields = ["experiment__slug"]
    ordering_fields = ["start", "end", "cpu_hours"]

    def get_queryset(self):
        return (
            Allocation.objects.visible_to(self.request.user)
            .select_related("experiment", "created_by")
            .order_by("experiment__name", "-start")
        )

    def _save(self, serializer, created: bool) -> None:
        instance = serializer.instance or Allocation()
        for name, value in serializer.validated_data.items():
            setattr(instance, name, value)
        try:
            serializer.instance = save_allocation(instance, self.request.user, created=created)
        except DjangoValidationError as exc:
            raise ValidationError(
                exc.message_dict
                if hasattr(exc, "error_dict")
                else {"non_field_errors": exc.messages}
            ) from None

    def perform_create(self, serializer) -> None:
        self._save(serializer, created=True)

    def perform_update(self, serializer) -> None:
        self._save(serializer, created=False)

    def perform_destroy(self, instance) -> None:
        delete_allocation(instance, self.request.user)

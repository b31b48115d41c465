"""``/api/v1/experiments/``: the experiments a user may see."""

from django.db.models import Count, Q
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from common.api_errors import FIELD_ERRORS, ProblemSerializer, service_errors
from common.parsers import BoundedJSONParser
from experiments.api.placement import placement_field
from experiments.models import Experiment, PhysicsGroup
from experiments.services.placement import placement_values, set_experiment_placement

from ..choices import TERMINAL_STATES


class PhysicsGroupSerializer(serializers.ModelSerializer):
    class Meta:
        model = PhysicsGroup
        fields = ["slug", "name"]


class ExperimentSerializer(serializers.ModelSerializer):
    groups = PhysicsGroupSerializer(many=True, read_only=True)
    # Read only here (changed with ``placement/``): plain strings, empty for the site's default.
    batch_partition = serializers.CharField(read_only=True)
    batch_account = serializers.CharField(read_only=True)
    batch_qos = serializers.CharField(read_only=True)
    batch_requirements = serializers.CharField(read_only=True)
    batch_avoid_partitions = serializers.CharField(
        read_only=True, help_text="Slurm partitions the experiment's work never runs in."
    )
    sla_accepted = serializers.BooleanField(read_only=True)
    open_requests = serializers.IntegerField(read_only=True)

    class Meta:
        model = Experiment
        fields = [
            "id",
            "slug",
            "name",
            "description",
            "sla_accepted",
            "sla_accepted_on",
            "sla_reference",
            "default_backend",
            "job_quota",
            "batch_partition",
            "batch_account",
            "batch_qos",
            "batch_requirements",
            "batch_avoid_partitions",
            "groups",
            "open_requests",
        ]


PLACEMENT_HELP = {
    "batch_partition": "Slurm partition; empty: the site's default.",
    "batch_account": "Slurm account, HTCondor accounting group; empty: the site's default.",
    "batch_qos": "Slurm QOS; empty: the site's default.",
    "batch_requirements": "HTCondor requirements (a ClassAd expression); empty: none.",
    "batch_avoid_partitions": "Slurm partitions the work must never run in, separated by commas.",
}


class ExperimentPlacementSerializer(serializers.Serializer):
    """Where an experiment's work runs; the names are checked by the service (the admin
    form's checks), which names the field at fault."""

    batch_partition = placement_field("batch_partition", PLACEMENT_HELP)
    batch_account = placement_field("batch_account", PLACEMENT_HELP)
    batch_qos = placement_field("batch_qos", PLACEMENT_HELP)
    batch_requirements = placement_field("batch_requirements", PLACEMENT_HELP)
    batch_avoid_partitions = placement_field("batch_avoid_partitions", PLACEMENT_HELP)

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: "not a placement field" for name in unknown})
        if not attrs:
            raise serializers.ValidationError(
                {"non_field_errors": f"give one or more of {', '.join(self.fields)}"}
            )
        return attrs


class ExperimentPlacementAnswerSerializer(ExperimentPlacementSerializer):
    changed = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        read_only=True,
        help_text="{field: [old, new]} of what changed (empty: nothing did).",
    )


class ExperimentViewSet(viewsets.ReadOnlyModelViewSet):
    """Experiments visible to the caller (operators see all; members their own)."""

    serializer_class = ExperimentSerializer
    lookup_field = "slug"
    search_fields = ["slug", "name"]
    ordering_fields = ["name", "slug"]
    filterset_fields = ["default_backend"]

    def get_queryset(self):
        open_filter = ~Q(requests__state__in=list(TERMINAL_STATES)) & Q(requests__isnull=False)
        return (
            Experiment.objects.visible_to(self.request.user)
            .prefetch_related("groups")
            .annotate(open_requests=Count("requests", filter=open_filter))
            .order_by("name")
        )

    @extend_schema(
        summary="Change where the experiment's work runs (operators)",
        description=(
            "Any of the partition, account, QOS, HTCondor requirements and partitions to"
            " avoid; empty for the site's default. The same checks and audit event as the"
            " admin form. Each open campaign of the experiment records the change and its"
            " jobs queued at the batch system that have not started move (see the campaign's"
            " `batch-controls/`)."
        ),
        request=ExperimentPlacementSerializer,
        responses={
            200: ExperimentPlacementAnswerSerializer,
            400: FIELD_ERRORS,
            403: ProblemSerializer,
            404: ProblemSerializer,
        },
    )
    @action(detail=True, methods=["post"], parser_classes=[BoundedJSONParser])
    def placement(self, request, slug=None):
        experiment = self.get_object()
        payload = ExperimentPlacementSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with service_errors():
            changes = set_experiment_placement(request.user, experiment, payload.validated_data)
        return Response({**placement_values(experiment), "changed": changes})

"""``/api/v1/experiments/``: the experiments a user may see."""

from django.db.models import Count, Q
from rest_framework import serializers, viewsets

from ..choices import TERMINAL_STATES
from ..models import Experiment, PhysicsGroup


class PhysicsGroupSerializer(serializers.ModelSerializer):
    class Meta:
        model = PhysicsGroup
        fields = ["slug", "name"]


class ExperimentSerializer(serializers.ModelSerializer):
    groups = PhysicsGroupSerializer(many=True, read_only=True)
    # Read only here (edited in the admin): plain strings, empty for the site's default.
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

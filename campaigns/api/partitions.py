"""``/api/v1/partitions/``: batch partitions with a capacity of their own, and the
experiments' quotas on them (operators only: the same service as the browser form, with
its checks and audit events)."""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from common.api_errors import FIELD_ERRORS, ProblemSerializer
from common.fields import SlugReference
from common.parsers import BoundedJSONParser
from experiments.api.audit import IsOperator
from experiments.api.fields import EndpointField
from experiments.endpoints import NAME_MAX_LENGTH
from experiments.models import Experiment

from ..models import Partition, PartitionQuota
from ..services import partitions as service
from .views import campaign_errors

REFUSED = {403: ProblemSerializer, 404: ProblemSerializer, 409: ProblemSerializer}


class OperatorsOnly(IsOperator):
    message = "Only OPOS operators read and change batch partitions and their quotas."


class PartitionPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200


class PartitionQuotaSerializer(serializers.ModelSerializer):
    experiment = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    limit = serializers.SerializerMethodField(help_text="Jobs in flight the quota allows.")
    in_flight = serializers.SerializerMethodField(help_text="The experiment's jobs there now.")

    class Meta:
        model = PartitionQuota
        fields = ["experiment", "max_jobs", "share_pct", "limit", "in_flight"]
        read_only_fields = fields

    def get_limit(self, quota: PartitionQuota) -> int:
        return quota.limit

    def get_in_flight(self, quota: PartitionQuota) -> int:
        used = self.context.get("in_flight_experiment", {})
        return used.get((quota.experiment_id, quota.partition.key), 0)


class PartitionSerializer(serializers.ModelSerializer):
    in_flight = serializers.SerializerMethodField(help_text="Jobs in flight there now.")
    quotas = serializers.SerializerMethodField()

    class Meta:
        model = Partition
        fields = ["id", "backend", "name", "capacity", "description", "in_flight", "quotas"]
        read_only_fields = fields

    def get_in_flight(self, partition: Partition) -> int:
        return self.context.get("in_flight", {}).get(partition.key, 0)

    def get_quotas(self, partition: Partition) -> list[dict]:
        rows = partition.quotas.all()
        for q in rows:
            q.partition = partition  # the prefetched rows know it: no query each
        return PartitionQuotaSerializer(rows, many=True, context=self.context).data


class PartitionWriteSerializer(serializers.Serializer):
    backend = EndpointField(
        default="slurm", help_text="A configured batch endpoint; default: slurm."
    )
    name = serializers.CharField(
        max_length=200, help_text="The partition's name at the batch system."
    )
    capacity = serializers.IntegerField(help_text="Jobs in flight there at most.")
    description = serializers.CharField(required=False, allow_blank=True, max_length=500)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class PartitionChangeSerializer(serializers.Serializer):
    capacity = serializers.IntegerField(help_text="Jobs in flight there at most.")
    description = serializers.CharField(required=False, allow_blank=True, max_length=500)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class PartitionQuotaInputSerializer(serializers.Serializer):
    experiment = SlugReference(slug_field="slug", queryset=Experiment.objects.all())
    max_jobs = serializers.IntegerField(
        required=False, allow_null=True, help_text="Jobs in flight there at most."
    )
    share_pct = serializers.IntegerField(
        required=False, allow_null=True, help_text="Percent (1-100) of the capacity."
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


@extend_schema_view(
    list=extend_schema(
        summary="Batch partitions with their capacity and quotas (operators)",
        parameters=[
            OpenApiParameter("backend", str, description="Only this backend's."),
            OpenApiParameter("name", str, description="Only the partition of this name."),
        ],
    ),
    retrieve=extend_schema(summary="One partition (operators)"),
    create=extend_schema(
        summary="Declare a partition with its capacity (operators; audited)",
        description=(
            "The scheduler submits no more jobs to the partition than its capacity allows,"
            " counting the jobs in flight of every campaign whose work runs there (its own"
            " partition, its experiment's or the site's default). Declaring a partition"
            " declared already changes its capacity."
        ),
        request=PartitionWriteSerializer,
        responses={201: PartitionSerializer, 400: FIELD_ERRORS, **REFUSED},
    ),
    partial_update=extend_schema(
        summary="Change a partition's capacity or description (operators; audited)",
        request=PartitionChangeSerializer,
        responses={200: PartitionSerializer, 400: FIELD_ERRORS, **REFUSED},
    ),
    destroy=extend_schema(
        summary="Forget a partition and its quotas (operators; audited)",
        parameters=[OpenApiParameter("reason", str, description="Why (recorded).")],
        responses={204: None, **REFUSED},
    ),
)
class PartitionViewSet(viewsets.ModelViewSet):
    """Partitions with limits of their own; the others have none beyond the backend's."""

    serializer_class = PartitionSerializer
    permission_classes = [OperatorsOnly]
    pagination_class = PartitionPagination
    parser_classes = [BoundedJSONParser]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        rows = Partition.objects.prefetch_related(
            Prefetch("quotas", PartitionQuota.objects.select_related("experiment"))
        ).order_by("backend", "name")
        backend = self.request.query_params.get("backend")
        name = self.request.query_params.get("name")
        if backend:
            rows = rows.filter(backend=backend[:NAME_MAX_LENGTH])
        if name:
            rows = rows.filter(name=name[:200])
        return rows

    def get_serializer_context(self):
        context = super().get_serializer_context()
        # What is in flight where: one aggregate query, whatever the page.
        context["in_flight"], context["in_flight_experiment"] = service.in_flight_by_partition()
        return context

    def _render(self, partition: Partition, code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=partition.pk)
        return Response(self.get_serializer(fresh).data, status=code)

    def create(self, request, *args, **kwargs):
        payload = PartitionWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        with campaign_errors():
            partition = service.set_partition(
                request.user,
                data["name"],
                data["capacity"],
                backend=data["backend"],
                description=data.get("description"),
                reason=data.get("reason", ""),
            )
        return self._render(partition, status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        partition = self.get_object()
        payload = PartitionChangeSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        with campaign_errors():
            partition = service.set_partition(
                request.user,
                partition.name,
                data["capacity"],
                backend=partition.backend,
                description=data.get("description"),
                reason=data.get("reason", ""),
            )
        return self._render(partition)

    def destroy(self, request, *args, **kwargs):
        partition = self.get_object()
        with campaign_errors():
            service.remove_partition(
                request.user, partition, request.query_params.get("reason", "")[:2000]
            )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Set or clear an experiment's quota on the partition (operators; audited)",
        description=(
            "`max_jobs` (jobs in flight there), `share_pct` (percent of the capacity), or"
            " both (the lower wins); neither clears the quota."
        ),
        request=PartitionQuotaInputSerializer,
        responses={200: PartitionSerializer, 400: FIELD_ERRORS, **REFUSED},
    )
    @action(detail=True, methods=["post"])
    def quota(self, request, pk=None):
        partition = self.get_object()
        payload = PartitionQuotaInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        with campaign_errors():
            service.set_quota(
                request.user,
                partition,
                data["experiment"],
                max_jobs=data.get("max_jobs"),
                share_pct=data.get("share_pct"),
                reason=data.get("reason", ""),
            )
        return self._render(partition)

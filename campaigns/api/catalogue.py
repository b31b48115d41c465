"""``/api/v1/datasets/``: the catalogue, its files, and the dataset lifecycle.

Reading as the rest of the API (``visible_to``: another experiment's dataset is a 404).
The lifecycle actions (``close``, ``reopen``, ``retire``, ``invalidate``, ``remake`` and
``files/invalidate``) are POSTs with a required ``reason``; they go through
``execution/lifecycle.py`` and its refusals come back as ``{"detail", "reasons"}`` with
403 (role), 409 (state) or 400 (input). Retired datasets are left out of the list unless
asked for with ``state``.
"""

from __future__ import annotations

import django_filters
from django.db import IntegrityError
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import filters, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from common.api_errors import FIELD_ERRORS, Problem
from common.filters import CharInFilter, ListWidget
from common.parsers import BoundedJSONParser
from experiments.models import Experiment

from ..execution import lifecycle
from ..execution.catalogue import define_dataset
from ..models import Dataset, DatasetState, OutputFile, Replica
from .execution import REFUSED, IdFilter, Pagination
from .views import campaign_errors

# --- datasets and files ---------------------------------------------------------------------------


class DatasetFilterSet(django_filters.FilterSet):
    experiment = CharInFilter(field_name="experiment__slug")
    campaign = IdFilter(field_name="campaign_id")
    name = django_filters.CharFilter(lookup_expr="icontains", help_text="Part of the name.")
    state = django_filters.MultipleChoiceFilter(
        choices=DatasetState.choices,
        widget=ListWidget,
        help_text="One or several states; without it, every state but retired.",
    )

    class Meta:
        model = Dataset
        fields = ["experiment", "campaign", "name", "state"]


class DatasetSerializer(serializers.ModelSerializer):
    experiment = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Dataset
        fields = [
            "id",
            "name",
            "experiment",
            "campaign",
            "description",
            "file_count",
            "size_bytes",
            "events",
            "created",
            "state",
            "state_reason",
            "state_since",
        ]
        read_only_fields = fields


class FileInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    size = serializers.IntegerField(min_value=0)
    checksum = serializers.CharField(max_length=64)
    events = serializers.IntegerField(min_value=0, default=0)
    path = serializers.CharField(max_length=1000, required=False, allow_blank=True)


class DatasetCreateSerializer(serializers.Serializer):
    experiment = serializers.SlugField()
    name = serializers.CharField(max_length=255)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    files = FileInputSerializer(many=True, required=False)


class ReplicaSerializer(serializers.ModelSerializer):
    class Meta:
        model = Replica
        fields = ["url", "adler32", "verified_at", "adopted"]
        read_only_fields = fields


class OutputFileSerializer(serializers.ModelSerializer):
    replicas = ReplicaSerializer(
        many=True, read_only=True, help_text="Verified copies in storage (adler32 compared)."
    )

    class Meta:
        model = OutputFile
        fields = [
            "id",
            "name",
            "size",
            "checksum",
            "events",
            "job",
            "path",
            "created",
            "replicas",
            "invalidated",
            "invalid_reason",
            "from_invalid_input",
        ]
        read_only_fields = fields


class LifecycleReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=lifecycle.MAX_REASON, help_text="Why (required, recorded in the audit trail)."
    )


class FileInvalidationSerializer(LifecycleReasonSerializer):
    files = serializers.ListField(
        child=serializers.CharField(max_length=255),
        min_length=1,
        max_length=lifecycle.MAX_NAMES,
        help_text="Names of the dataset's files.",
    )


class InvalidationSerializer(serializers.Serializer):
    dataset = DatasetSerializer()
    files = serializers.IntegerField(help_text="Files invalidated.")
    descendants = serializers.IntegerField(help_text="Files newly marked from_invalid_input.")


@extend_schema_view(
    list=extend_schema(summary="Datasets visible to the caller, with file counts"),
    retrieve=extend_schema(summary="One dataset"),
    create=extend_schema(
        summary="Define a dataset with its files (operators, the experiment's liaisons)",
        request=DatasetCreateSerializer,
        responses={201: DatasetSerializer, 400: FIELD_ERRORS, **REFUSED},
    ),
)
class DatasetViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """The catalogue: datasets, and the files declared into them."""

    serializer_class = DatasetSerializer
    filter_backends = [DjangoFilterBackend, filters.OrderingFilter]
    filterset_class = DatasetFilterSet
    ordering_fields = ["name", "created", "file_count", "events"]
    ordering = ["name"]
    pagination_class = Pagination
    parser_classes = [BoundedJSONParser]

    def get_queryset(self):
        datasets = Dataset.objects.visible_to(self.request.user).select_related("experiment")
        if self.action == "list" and "state" not in self.request.query_params:
            datasets = datasets.exclude(state=DatasetState.RETIRED)  # kept, not listed
        return datasets

    def create(self, request, *args, **kwargs):
        payload = DatasetCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        experiment = get_object_or_404(
            Experiment.objects.visible_to(request.user), slug=data["experiment"]
        )
        try:
            with campaign_errors():
                dataset = define_dataset(
                    request.user,
                    experiment,
                    data["name"],
                    data.get("description", ""),
                    [dict(f) for f in data.get("files", [])],
                )
        except IntegrityError as exc:  # the same name defined at the same moment
            raise Problem(
                "A dataset with this name was just defined.",
                [f"name: {data['name']}"],
                status.HTTP_409_CONFLICT,
            ) from exc
        dataset = self.get_queryset().get(pk=dataset.pk)
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Files of a dataset", responses={200: OutputFileSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def files(self, request, pk=None):
        dataset = self.get_object()
        files = (
            OutputFile.objects.filter(dataset=dataset)
            .prefetch_related("replicas")
            .order_by("name", "id")
        )
        page = self.paginate_queryset(files)
        return self.get_paginated_response(OutputFileSerializer(page, many=True).data)

    # --- the lifecycle ---------------------------------------------------------------------------

    def _move(self, request, action_name: str) -> Response:
        dataset = self.get_object()
        payload = LifecycleReasonSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with campaign_errors():
            lifecycle.change_state(dataset, action_name, request.user, payload.data["reason"])
        return Response(DatasetSerializer(self.get_queryset().get(pk=dataset.pk)).data)

    @extend_schema(
        summary="Close a dataset: complete, no more files (operators, the experiment's liaisons)",
        description="Refused (409) while jobs of the stage producing it are still to run.",
        request=LifecycleReasonSerializer,
        responses={200: DatasetSerializer, 400: FIELD_ERRORS, **REFUSED},
    )
    @action(detail=True, methods=["post"], parser_classes=[BoundedJSONParser])
    def close(self, request, pk=None):
        return self._move(request, "close")

    @extend_schema(
        summary="Reopen a closed dataset (operators, the experiment's liaisons)",
        request=LifecycleReasonSerializer,
        responses={200: DatasetSerializer, 400: FIELD_ERRORS, **REFUSED},
    )
    @action(detail=True, methods=["post"], parser_classes=[BoundedJSONParser])
    def reopen(self, request, pk=None):
        return self._move(request, "reopen")

    @extend_schema(
        summary="Retire a dataset: kept, hidden from the default list (operators, liaisons)",
        request=LifecycleReasonSerializer,
        responses={200: DatasetSerializer, 400: FIELD_ERRORS, **REFUSED},
    )
    @action(detail=True, methods=["post"], parser_classes=[BoundedJSONParser])
    def retire(self, request, pk=None):
        return self._move(request, "retire")

    @extend_schema(
        summary="Invalidate a dataset and all its files (operators, the experiment's liaisons)",
        description=(
            "Its files leave the counts and the inputs of jobs not yet submitted; files made "
            "from them are marked `from_invalid_input`."
        ),
        request=LifecycleReasonSerializer,
        responses={200: InvalidationSerializer, 400: FIELD_ERRORS, **REFUSED},
    )
    @action(detail=True, methods=["post"], parser_classes=[BoundedJSONParser])
    def invalidate(self, request, pk=None):
        dataset = self.get_object()
        payload = LifecycleReasonSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with campaign_errors():
            result = lifecycle.invalidate_dataset(dataset, request.user, payload.data["reason"])
        return self._invalidation(result)

    @extend_schema(
        summary="Invalidate some files of a dataset, by name (operators, liaisons)",
        description="All of them or, on any unknown or already invalid name, none (400).",
        request=FileInvalidationSerializer,
        responses={200: InvalidationSerializer, 400: FIELD_ERRORS, **REFUSED},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="files/invalidate",
        url_name="files-invalidate",
        parser_classes=[BoundedJSONParser],
    )
    def invalidate_files(self, request, pk=None):
        dataset = self.get_object()
        payload = FileInvalidationSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        with campaign_errors():
            result = lifecycle.invalidate_files(
                dataset, data["files"], request.user, data["reason"]
            )
        return self._invalidation(result)

    def _invalidation(self, result: lifecycle.Invalidation) -> Response:
        dataset = self.get_queryset().get(pk=result.dataset.pk)
        return Response(
            {
                "dataset": DatasetSerializer(dataset).data,
                "files": result.files,
                "descendants": result.descendants,
            }
        )

    @extend_schema(
        summary="Remake the invalidated files: re-run the jobs that made them (operators)",
        description="A recovery of the producing stage, limited to its invalidated outputs; "
        "the campaign must still be open.",
        request=LifecycleReasonSerializer,
        responses={
            200: inline_serializer(
                "DatasetRemade",
                {"jobs": serializers.ListField(child=serializers.IntegerField())},
            ),
            400: FIELD_ERRORS,
            **REFUSED,
        },
    )
    @action(detail=True, methods=["post"], parser_classes=[BoundedJSONParser])
    def remake(self, request, pk=None):
        dataset = self.get_object()
        payload = LifecycleReasonSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with campaign_errors():
            jobs = lifecycle.remake(dataset, request.user, payload.data["reason"])
        return Response({"jobs": jobs})

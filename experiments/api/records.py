"""``/api/v1/code/`` and ``/api/v1/training/``: the operators' SLA records over the API.

The same services as the browser forms (``services/records.py``): the same checks
(checksum given or computed from an uploaded file, owners who are liaisons of the
experiment, no future training session, attendees who are operators), the same audit
events, nothing written when anything is refused. Operators only, like the pages.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from common.api_errors import FIELD_ERRORS, ProblemSerializer, service_errors
from common.fields import SlugReference
from common.parsers import BoundedJSONParser

from ..choices import CodeKind, TrainingTopic
from ..models import Experiment, ProductionCode, TrainingRecord
from ..services import approve_code, record_training, register_code
from .audit import IsOperator

REFUSED = {403: ProblemSerializer, 404: ProblemSerializer}


class OperatorRecords(IsOperator):
    message = "Only OPOS operators read and write training records and production code."


class RecordPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200


def _usernames(**kwargs) -> serializers.ListField:
    return serializers.ListField(
        child=SlugReference(slug_field="username", queryset=get_user_model().objects.all()),
        required=False,
        max_length=100,
        **kwargs,
    )


# --- production code ------------------------------------------------------------------------


class ProductionCodeSerializer(serializers.ModelSerializer):
    experiment = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owners = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    approved_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = ProductionCode
        fields = [
            "id",
            "experiment",
            "name",
            "version",
            "kind",
            "location",
            "sha256",
            "owners",
            "approved",
            "approved_by",
            "approved_at",
            "created",
        ]
        read_only_fields = fields


class CodeRegisterSerializer(serializers.Serializer):
    # Lengths and formats are the service's checks (one message per field, as in the form).
    experiment = SlugReference(slug_field="slug", queryset=Experiment.objects.all())
    name = serializers.CharField(allow_blank=True, help_text="At most 120 characters.")
    version = serializers.CharField(allow_blank=True, help_text="At most 60 characters.")
    kind = serializers.ChoiceField(choices=CodeKind.choices, default=CodeKind.SCRIPT)
    location = serializers.CharField(allow_blank=True, help_text="Path or URL of the file.")
    sha256 = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="64 hex digits; leave empty to compute it from `upload`.",
    )
    upload = serializers.FileField(
        required=False,
        help_text="The file (multipart), read only to compute its sha256; not stored.",
    )
    owners = _usernames(help_text="Usernames of the experiment's liaisons who control the file.")
    approve = serializers.BooleanField(
        default=False, help_text="Approve at once (needs a sha256 and owners)."
    )


@extend_schema_view(
    list=extend_schema(
        summary="Registered production code (operators)",
        responses={200: ProductionCodeSerializer(many=True), **REFUSED},
    ),
    retrieve=extend_schema(
        summary="One registered version (operators)",
        responses={200: ProductionCodeSerializer, **REFUSED},
    ),
    create=extend_schema(
        summary="Register a version of a production script or configuration (operators)",
        description=(
            "JSON, or multipart with `upload` to compute the sha256 from the file (a given"
            " sha256 must then match it). Owners must be liaisons of the experiment;"
            " `approve` needs a checksum and owners. Recorded in the audit trail."
        ),
        request={
            "application/json": CodeRegisterSerializer,
            "multipart/form-data": CodeRegisterSerializer,
        },
        responses={201: ProductionCodeSerializer, 400: FIELD_ERRORS, **REFUSED},
    ),
)
class ProductionCodeViewSet(
    mixins.CreateModelMixin,
    viewsets.ReadOnlyModelViewSet,
):
    """Versions of production scripts and configurations the experiments run."""

    serializer_class = ProductionCodeSerializer
    permission_classes = [OperatorRecords]
    pagination_class = RecordPagination
    parser_classes = [BoundedJSONParser, MultiPartParser]
    filterset_fields = ["approved"]
    search_fields = ["name", "version", "experiment__slug"]
    ordering_fields = ["name", "created"]

    def get_queryset(self):
        return (
            ProductionCode.objects.visible_to(self.request.user)
            .select_related("experiment", "approved_by")
            .prefetch_related("owners")
            .order_by("experiment__name", "name", "-created", "-id")
        )

    def _render(self, code: ProductionCode) -> dict:
        return ProductionCodeSerializer(self.get_queryset().get(pk=code.pk)).data

    def create(self, request, *args, **kwargs):
        payload = CodeRegisterSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        with service_errors():
            code = register_code(
                request.user,
                data["experiment"],
                name=data["name"],
                version=data["version"],
                kind=data["kind"],
                location=data["location"],
                sha256=data.get("sha256", ""),
                owners=data.get("owners", []),
                upload=data.get("upload"),
                approve=data["approve"],
            )
        return Response(self._render(code), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Approve a registered version (operators)",
        description="It must be checksummed and owned only by liaisons of its experiment.",
        request=None,
        responses={200: ProductionCodeSerializer, 400: FIELD_ERRORS, **REFUSED},
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        code = self.get_object()
        with service_errors():
            code = approve_code(request.user, code)
        return Response(self._render(code))


# --- training ---------------------------------------------------------------------------------


class TrainingRecordSerializer(serializers.ModelSerializer):
    experiment = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    attendees = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    recorded_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = TrainingRecord
        fields = [
            "id",
            "experiment",
            "held_on",
            "topics",
            "attendees",
            "notes",
            "recorded_by",
            "created",
        ]
        read_only_fields = fields


class TrainingCreateSerializer(serializers.Serializer):
    experiment = SlugReference(slug_field="slug", queryset=Experiment.objects.all())
    held_on = serializers.DateField(help_text="YYYY-MM-DD; not in the future.")
    topics = serializers.ListField(
        child=serializers.CharField(),
        max_length=len(TrainingTopic.values),
        help_text=f"One or more of {', '.join(TrainingTopic.values)}.",
    )
    attendees = _usernames(help_text="Usernames of the operators who attended.")
    notes = serializers.CharField(required=False, allow_blank=True)


@extend_schema_view(
    list=extend_schema(
        summary="Training sessions the experiments gave the operators (operators)",
        responses={200: TrainingRecordSerializer(many=True), **REFUSED},
    ),
    retrieve=extend_schema(
        summary="One training session (operators)",
        responses={200: TrainingRecordSerializer, **REFUSED},
    ),
    create=extend_schema(
        summary="Record a training session (operators)",
        description="Recorded in the audit trail; the eligibility checklist reads it.",
        request=TrainingCreateSerializer,
        responses={201: TrainingRecordSerializer, 400: FIELD_ERRORS, **REFUSED},
    ),
)
class TrainingRecordViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Sessions in which an experiment trained the operators on its production."""

    serializer_class = TrainingRecordSerializer
    permission_classes = [OperatorRecords]
    pagination_class = RecordPagination
    parser_classes = [BoundedJSONParser]
    search_fields = ["notes", "experiment__slug"]
    ordering_fields = ["held_on"]

    def get_queryset(self):
        return (
            TrainingRecord.objects.visible_to(self.request.user)
            .select_related("experiment", "recorded_by")
            .prefetch_related("attendees")
            .order_by("-held_on", "-id")
        )

    def create(self, request, *args, **kwargs):
        payload = TrainingCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        with service_errors():
            training = record_training(
                request.user,
                data["experiment"],
                data["held_on"],
                data["topics"],
                data.get("attendees", []),
                data.get("notes", ""),
            )
        return Response(
            TrainingRecordSerializer(self.get_queryset().get(pk=training.pk)).data,
            status=status.HTTP_201_CREATED,
        )

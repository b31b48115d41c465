"""``/api/v1/templates/``: workflow templates, read by everyone who may see them; created,
imported, cloned and exported by operators through the same services as the browser pages.

A template is created from a JSON body shaped like the YAML document (``POST``), imported
from the YAML document itself (``POST import/``), copied into an experiment (``POST
{id}/clone/``) and exported as YAML (``GET {id}/export/``). Every refusal names its field
(``stages[1].cores: ...``, with the line for YAML) and nothing is created unless all of it
is valid; each creation is recorded in the audit trail by the service.
"""

from __future__ import annotations

from django.db.models import Prefetch
from django.utils.text import slugify
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import filters, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from common.api_errors import FIELD_ERRORS, ProblemSerializer
from common.fields import SlugReference
from common.parsers import BoundedJSONParser
from experiments.api.audit import IsOperator
from experiments.models import Experiment, StageTemplate, WorkflowTemplate

from ..services import clone_template, create_template, export_template, import_template
from ..services.templates import MAX_TEMPLATE_BYTES
from .filtersets import TemplateFilterSet
from .serializers import WorkflowTemplateSerializer
from .views import campaign_errors

REFUSED = {403: ProblemSerializer, 404: ProblemSerializer}
# 400: messages keyed by field (the body's shape), or the service's refusal
# ``{"detail", "reasons"}`` with each reason naming its field (and line, for YAML).
INVALID = {400: FIELD_ERRORS}


class TemplateWriters(IsOperator):
    """Reading is for whoever may see the template; creating, importing and cloning are for
    operators (refused by role before any lookup, as for the other operator actions)."""

    message = "Only OPOS operators create, import or clone workflow templates."

    def has_permission(self, request, view) -> bool:
        if view.action in ("list", "retrieve", "export", "metadata"):
            return bool(request.user and request.user.is_authenticated)
        return super().has_permission(request, view)


def _experiment_field(**kwargs) -> SlugReference:
    return SlugReference(
        slug_field="slug",
        queryset=Experiment.objects.all(),
        allow_null=True,
        required=False,
        **kwargs,
    )


class TemplateCreateSerializer(serializers.Serializer):
    experiment = _experiment_field(help_text="Experiment slug; empty or null: a shared template.")
    # The content is checked by the service (every problem at once, by field); these fields
    # document its shape.
    name = serializers.JSONField(required=False, help_text="1 to 120 characters.")
    version = serializers.JSONField(required=False, help_text="Whole number; default 1.")
    description = serializers.JSONField(required=False)
    stages = serializers.JSONField(
        required=False,
        help_text=(
            "Stages in order, each as in the YAML document: name, code {name, version,"
            " sha256}, parameters, cores, memory_mb, walltime_s, split, files_per_job,"
            " input_stage."
        ),
    )
    failure_rules = serializers.JSONField(
        required=False,
        help_text=(
            "The template's own failure rules, each as in /failure-rules/ without"
            " `template`: position, exit_codes, stderr_pattern, batch_reason,"
            " failure_class, action, max_attempts, factor, description."
        ),
    )


class TemplateImportSerializer(serializers.Serializer):
    experiment = _experiment_field(help_text="Experiment slug; empty or null: a shared template.")
    document = serializers.CharField(
        required=False,
        trim_whitespace=False,
        max_length=MAX_TEMPLATE_BYTES,
        help_text="The YAML document (as exported); or send it as `file` (multipart).",
    )
    file = serializers.FileField(required=False, help_text="The YAML file (multipart).")

    def validate(self, attrs):
        if not attrs.get("file") and not (attrs.get("document") or "").strip():
            raise serializers.ValidationError({"document": ["give the YAML document or a file"]})
        return attrs


class TemplateCloneSerializer(serializers.Serializer):
    experiment = SlugReference(
        slug_field="slug", queryset=Experiment.objects.all(), help_text="Experiment slug."
    )
    name = serializers.CharField(
        required=False, allow_blank=True, max_length=120, help_text="Empty: keep the name."
    )


class TemplateCloneResultSerializer(serializers.Serializer):
    template = WorkflowTemplateSerializer()
    warnings = serializers.ListField(
        child=serializers.CharField(), help_text="Stages whose code the experiment must register."
    )


TemplateExportSerializer = inline_serializer(
    "TemplateExport",
    {
        "id": serializers.IntegerField(),
        "filename": serializers.CharField(),
        "document": serializers.CharField(help_text="The YAML document `import/` accepts."),
    },
)


@extend_schema_view(
    list=extend_schema(summary="Workflow templates visible to the caller (shared and own)"),
    retrieve=extend_schema(summary="One workflow template with its stages"),
    create=extend_schema(
        summary="Create a workflow template (operators)",
        description=(
            "The body is the YAML document's content as JSON, plus `experiment`. The same"
            " checks as an import: registered code of the experiment, stage names,"
            " input stages without cycles, limits. Refused as a whole, naming each field."
        ),
        request=TemplateCreateSerializer,
        responses={201: WorkflowTemplateSerializer, **INVALID, **REFUSED},
    ),
)
class WorkflowTemplateViewSet(
    mixins.CreateModelMixin,
    viewsets.ReadOnlyModelViewSet,
):
    """Workflow templates: shared ones and those of the caller's experiments."""

    serializer_class = WorkflowTemplateSerializer
    permission_classes = [TemplateWriters]
    filter_backends = [DjangoFilterBackend, filters.SearchFilter]
    filterset_class = TemplateFilterSet
    search_fields = ["name", "description"]
    parser_classes = [BoundedJSONParser]

    def get_queryset(self):
        stages = StageTemplate.objects.select_related("code", "input_stage").order_by("position")
        return (
            WorkflowTemplate.objects.visible_to(self.request.user)
            .select_related("experiment")
            .prefetch_related(Prefetch("stages", queryset=stages))
            .order_by("name", "version", "id")
        )

    def _render(self, template: WorkflowTemplate) -> dict:
        return WorkflowTemplateSerializer(self.get_queryset().get(pk=template.pk)).data

    def create(self, request, *args, **kwargs):
        payload = TemplateCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        experiment = payload.validated_data.get("experiment")
        # The body as sent, so the service also names fields it does not know.
        data = {key: value for key, value in request.data.items() if key != "experiment"}
        with campaign_errors():
            template = create_template(data, experiment, request.user)
        return Response(self._render(template), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Import a workflow template from its YAML document (operators)",
        description=(
            "JSON `{experiment, document}` or multipart with `file`. Every problem is"
            " listed, each with its line and field; nothing is created unless all is valid."
        ),
        request={
            "application/json": TemplateImportSerializer,
            "multipart/form-data": TemplateImportSerializer,
        },
        responses={201: WorkflowTemplateSerializer, **INVALID, **REFUSED},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        url_name="import",
        parser_classes=[BoundedJSONParser, MultiPartParser],
    )
    def import_document(self, request):
        payload = TemplateImportSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        upload = payload.validated_data.get("file")
        text = upload.read(MAX_TEMPLATE_BYTES + 1) if upload else payload.validated_data["document"]
        with campaign_errors():
            template = import_template(text, payload.validated_data.get("experiment"), request.user)
        return Response(self._render(template), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Copy a template into an experiment, as its next version (operators)",
        description=(
            "Each stage's code is matched by name and version in the experiment's registry;"
            " `warnings` name the stages whose code the experiment must still register."
        ),
        request=TemplateCloneSerializer,
        responses={201: TemplateCloneResultSerializer, **INVALID, **REFUSED},
    )
    @action(detail=True, methods=["post"])
    def clone(self, request, pk=None):
        template = self.get_object()
        payload = TemplateCloneSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with campaign_errors():
            copy, warnings = clone_template(
                template,
                payload.validated_data["experiment"],
                request.user,
                payload.validated_data.get("name", ""),
            )
        return Response(
            {"template": self._render(copy), "warnings": warnings},
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        summary="The template as a YAML document to import elsewhere",
        responses={200: TemplateExportSerializer, **REFUSED},
    )
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        template = self.get_object()
        filename = f"{slugify(template.name) or 'template'}-v{template.version}.yaml"
        return Response(
            {"id": template.pk, "filename": filename, "document": export_template(template)}
        )

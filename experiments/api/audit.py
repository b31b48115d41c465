"""``GET /api/v1/audit/``: the audit trail, for operators; read only, never edited.

Role grants, SLA settings, training records and registered code (``AuditEvent``),
whether changed through the services or the Django admin. Request transitions have
their own log: ``GET /api/v1/requests/{id}/history/``.
"""

from __future__ import annotations

import django_filters
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import filters, serializers, viewsets
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission

from common.api_errors import ProblemSerializer
from common.filters import CharInFilter

from ..models import AuditEvent
from ..models.visibility import is_operator

REFUSED = {403: ProblemSerializer, 404: ProblemSerializer}


class IsOperator(BasePermission):
    """Operators and admins only (others: 403)."""

    message = "Only OPOS operators read the audit trail."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and is_operator(request.user))


class AuditEventFilterSet(django_filters.FilterSet):
    experiment = CharInFilter(field_name="experiment__slug", help_text="Experiment slug(s).")
    action = CharInFilter(field_name="action", help_text="e.g. grant_role, record_training.")
    actor = django_filters.CharFilter(field_name="actor__username")
    created_after = django_filters.IsoDateTimeFilter(field_name="created", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["experiment", "action", "actor", "created_after", "created_before"]


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    experiment = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "created", "actor", "action", "experiment", "target", "data"]
        read_only_fields = fields


class AuditPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


@extend_schema_view(
    list=extend_schema(
        summary="The audit trail, newest first (operators)",
        responses={200: AuditEventSerializer(many=True), **REFUSED},
    ),
    retrieve=extend_schema(
        summary="One audit event (operators)",
        responses={200: AuditEventSerializer, **REFUSED},
    ),
)
class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """Who changed access or eligibility, what and when; nobody can change this record."""

    serializer_class = AuditEventSerializer
    permission_classes = [IsOperator]
    pagination_class = AuditPagination
    filter_backends = [DjangoFilterBackend, filters.SearchFilter]
    filterset_class = AuditEventFilterSet
    search_fields = ["target", "action"]

    def get_queryset(self):
        return (
            AuditEvent.objects.visible_to(self.request.user)
            .select_related("actor", "experiment")
            .order_by("-created", "-id")
        )

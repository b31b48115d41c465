"""``/api/v1/requests/``: production requests, their transitions, history and comments.

Thin: the queryset comes from ``visible_to`` (a request the caller may not
see is a 404, never a 403), every write goes through a service, and the
services' refusals become HTTP answers in ``errors.service_errors``.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, filters, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from common import pagecache
from common.api_errors import FIELD_ERRORS, ProblemSerializer, service_errors
from common.parsers import BoundedJSONParser
from experiments.models import Experiment
from experiments.models.visibility import experiment_roles, is_operator

from .. import services
from ..models import Comment, ProductionRequest, Sample, Transition
from ..services.numbering import NUMBER_PATTERN
from .filters import ProductionRequestFilterSet, with_priority_rank
from .serializers import (
    CommentSerializer,
    EligibilitySerializer,
    ProductionRequestCreateSerializer,
    ProductionRequestSerializer,
    ProductionRequestUpdateSerializer,
    TimelineEntrySerializer,
    TransitionInputSerializer,
    TransitionResultSerializer,
    timeline,
)

LOOKUP = OpenApiParameter(
    "id",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The request's id, or its number (DUNE-2026-0042; older ones REQ-2026-0042).",
)
REFUSED = {403: ProblemSerializer, 404: ProblemSerializer}


class RequestPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200


@extend_schema_view(
    list=extend_schema(
        summary="Requests visible to the caller",
        description=(
            "Operators see every experiment's requests; liaisons and physicists those of"
            " their experiments. Filter by experiment, working group, state(s), priority,"
            " people and deadline; `search` looks in number, ticket and title."
        ),
    ),
    retrieve=extend_schema(
        summary="One request", parameters=[LOOKUP], responses={200: ProductionRequestSerializer}
    ),
    create=extend_schema(
        summary="File a request",
        description=(
            "Files a draft for an experiment the caller is a liaison of (operators: any)."
            " With `submit: true` it is submitted at once; if the submit is refused"
            " nothing is saved."
        ),
        request=ProductionRequestCreateSerializer,
        responses={
            201: ProductionRequestSerializer,
            400: FIELD_ERRORS,
            403: ProblemSerializer,
            409: ProblemSerializer,
        },
    ),
    partial_update=extend_schema(
        summary="Change fields",
        description=(
            "Liaisons change everything in draft and needs_info; operators change priority,"
            " deadline and assignee in any open state. 403 for a field the caller may never"
            " change, 409 for one the current state freezes. Every change is recorded."
        ),
        parameters=[LOOKUP],
        request=ProductionRequestUpdateSerializer,
        responses={
            200: ProductionRequestSerializer,
            400: FIELD_ERRORS,
            409: ProblemSerializer,
            **REFUSED,
        },
    ),
)
class ProductionRequestViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Production requests of the experiments the caller belongs to (all, for operators)."""

    serializer_class = ProductionRequestSerializer
    pagination_class = RequestPagination
    filter_backends = [DjangoFilterBackend, filters.SearchFilter]
    filterset_class = ProductionRequestFilterSet
    search_fields = ["number", "ticket", "title"]
    parser_classes = [BoundedJSONParser]
    http_method_names = ["get", "post", "patch", "head", "options"]
    lookup_value_regex = rf"[0-9]+|{NUMBER_PATTERN}"

    def get_queryset(self):
        # A fixed number of queries whatever the page holds: the request
        # row with its experiment, group and people joined, then one query
        # for all the samples of the page with their templates.
        samples = Sample.objects.select_related("template").order_by("id")
        qs = (
            ProductionRequest.objects.visible_to(self.request.user)
            .select_related("experiment", "physics_group", "requester", "assignee")
            .prefetch_related(Prefetch("samples", queryset=samples))
            .order_by("-created", "-id")
        )
        return with_priority_rank(qs)

    def list(self, request, *args, **kwargs):
        # Shared through the page cache by everyone with the same view of the requests:
        # the visible experiments and the role in each (``allowed_actions`` depends on
        # operator vs liaison vs physicist), with the query string (filters, page).
        parent = super().list
        scope = pagecache.members_scope(is_operator(request.user), experiment_roles(request.user))
        return pagecache.api_answer(
            self, request, "request-list", [], scope, lambda: parent(request, *args, **kwargs).data
        )

    def get_object(self) -> ProductionRequest:
        value = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        key = "pk" if value.isdigit() else "number"
        return get_object_or_404(self.get_queryset(), **{key: value})

    def _fresh(self, pk: int) -> ProductionRequest:
        return self.get_queryset().get(pk=pk)

    def _render(self, obj: ProductionRequest) -> dict:
        return ProductionRequestSerializer(obj, context=self.get_serializer_context()).data

    def create(self, request, *args, **kwargs):
        payload = ProductionRequestCreateSerializer(data=request.data)
        # Another experiment's slug reads like an unknown one: its name and existence
        # are not the caller's business.
        payload.fields["experiment"].queryset = Experiment.objects.visible_to(request.user)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        experiment = data.pop("experiment")
        samples = data.pop("samples")
        submit = data.pop("submit")
        # Filing and submitting are one transaction: a refused submit
        # leaves no draft (and no used request number) behind.
        with service_errors(), transaction.atomic():
            obj = services.create_request(request.user, experiment, data, samples)
            if submit:
                services.transition(obj, "submit", request.user)
        return Response(self._render(self._fresh(obj.pk)), status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        if not kwargs.get("partial"):
            raise exceptions.MethodNotAllowed(request.method)
        obj = self.get_object()
        payload = ProductionRequestUpdateSerializer(obj, data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        data, samples = payload.changed()
        with service_errors():
            services.update_request(obj, request.user, data, samples=samples)
        return Response(self._render(self._fresh(obj.pk)))

    @extend_schema(
        summary="Take an action (submit, approve, hold, ...)",
        description=(
            "403 when the caller's role may not take the action, 409 (with the reasons)"
            " when the state or the eligibility checklist forbids it, 400 for an unknown"
            " action or a missing required note."
        ),
        parameters=[LOOKUP],
        request=TransitionInputSerializer,
        responses={
            200: TransitionResultSerializer,
            400: ProblemSerializer,
            409: ProblemSerializer,
            **REFUSED,
        },
    )
    @action(detail=True, methods=["post"])
    def transitions(self, request, pk=None):
        obj = self.get_object()
        payload = TransitionInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with service_errors():
            services.transition(
                obj, payload.validated_data["action"], request.user, payload.validated_data["note"]
            )
        fresh = self._fresh(obj.pk)
        return Response({"state": fresh.state, "request": self._render(fresh)})

    @extend_schema(
        summary="Timeline: transitions, edits and comments, oldest first",
        parameters=[LOOKUP],
        responses={200: TimelineEntrySerializer(many=True), 404: ProblemSerializer},
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def history(self, request, pk=None):
        obj = self.get_object()
        transitions = Transition.objects.filter(request=obj).select_related("actor")
        comments = Comment.objects.filter(request=obj).select_related("author")
        return Response(TimelineEntrySerializer(timeline(transitions, comments), many=True).data)

    @extend_schema(
        methods=["GET"],
        summary="Comments, oldest first",
        parameters=[LOOKUP],
        responses={200: CommentSerializer(many=True), 404: ProblemSerializer},
    )
    @extend_schema(
        methods=["POST"],
        summary="Comment (liaisons of the experiment and operators)",
        parameters=[LOOKUP],
        request=CommentSerializer,
        responses={201: CommentSerializer, 400: FIELD_ERRORS, **REFUSED},
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None, filter_backends=[])
    def comments(self, request, pk=None):
        obj = self.get_object()
        if request.method == "GET":
            comments = Comment.objects.filter(request=obj).select_related("author")
            return Response(CommentSerializer(comments, many=True).data)
        payload = CommentSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with service_errors():
            comment = services.add_comment(obj, request.user, payload.validated_data["body"])
        return Response(CommentSerializer(comment).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="The SLA checklist: what is missing before approval, and who can fix it",
        parameters=[LOOKUP],
        responses={200: EligibilitySerializer, 404: ProblemSerializer},
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def eligibility(self, request, pk=None):
        checks = services.sla_checks(self.get_object())
        body = {"eligible": all(c.ok for c in checks), "checks": [vars(c) for c in checks]}
        return Response(EligibilitySerializer(body).data)

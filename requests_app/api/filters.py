"""Query filters of ``/api/v1/requests/``, built on the same choice sets as the models."""

from __future__ import annotations

import django_filters
from django.db.models import Case, IntegerField, QuerySet, Value, When

from common.filters import CharInFilter, ListWidget, StableOrderingFilter

from ..choices import PRIORITY_WEIGHT, Priority, RequestState
from ..models import ProductionRequest


def with_priority_rank(qs: QuerySet) -> QuerySet:
    """Annotate ``priority_rank`` (critical highest) so priority sorts by urgency."""
    return qs.annotate(
        priority_rank=Case(
            *[When(priority=p, then=Value(w)) for p, w in PRIORITY_WEIGHT.items()],
            output_field=IntegerField(),
        )
    )


class ProductionRequestFilterSet(django_filters.FilterSet):
    experiment = CharInFilter(
        field_name="experiment__slug", help_text="Experiment slug(s), comma-separated."
    )
    physics_group = CharInFilter(
        field_name="physics_group__slug", help_text="Working group slug(s), comma-separated."
    )
    state = django_filters.MultipleChoiceFilter(
        choices=RequestState.choices,
        widget=ListWidget,
        help_text="One or several states (repeat the parameter or separate by commas).",
    )
    priority = django_filters.MultipleChoiceFilter(
        choices=Priority.choices, widget=ListWidget, help_text="One or several priorities."
    )
    assignee = django_filters.CharFilter(
        field_name="assignee__username", help_text="The assigned operator's username."
    )
    requester = django_filters.CharFilter(
        field_name="requester__username", help_text="The requester's username."
    )
    deadline_before = django_filters.DateFilter(
        field_name="deadline", lookup_expr="lte", help_text="Deadline on or before (YYYY-MM-DD)."
    )
    deadline_after = django_filters.DateFilter(
        field_name="deadline", lookup_expr="gte", help_text="Deadline on or after (YYYY-MM-DD)."
    )
    ordering = StableOrderingFilter(
        fields={
            "deadline": "deadline",
            "priority_rank": "priority",
            "created": "created",
            "updated": "updated",
            "number": "number",
            "state": "state",
        },
        help_text="Sort keys, comma-separated; prefix with - for descending.",
    )

    class Meta:
        model = ProductionRequest
        fields: list[str] = []

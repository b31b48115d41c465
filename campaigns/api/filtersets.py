"""Query filters of the campaign endpoints, built on the same choice sets as the models."""

from __future__ import annotations

import django_filters

from common.filters import CharInFilter, ListWidget, StableOrderingFilter
from experiments.models import WorkflowTemplate
from requests_app.choices import Priority

from ..choices import CampaignState
from ..models import Campaign


class CampaignFilterSet(django_filters.FilterSet):
    experiment = CharInFilter(
        field_name="experiment__slug", help_text="Experiment slug(s), comma-separated."
    )
    state = django_filters.MultipleChoiceFilter(
        choices=CampaignState.choices,
        widget=ListWidget,
        help_text="One or several states (repeat the parameter or separate by commas).",
    )
    priority = django_filters.MultipleChoiceFilter(
        choices=Priority.choices, widget=ListWidget, help_text="One or several priorities."
    )
    deadline_before = django_filters.DateFilter(
        field_name="deadline", lookup_expr="lte", help_text="Deadline on or before (YYYY-MM-DD)."
    )
    deadline_after = django_filters.DateFilter(
        field_name="deadline", lookup_expr="gte", help_text="Deadline on or after (YYYY-MM-DD)."
    )
    ordering = StableOrderingFilter(
        fields={"deadline": "deadline", "created": "created", "name": "name", "state": "state"},
        help_text="deadline, created, name or state; prefix with - to reverse.",
    )

    class Meta:
        model = Campaign
        fields = ["experiment", "state", "priority", "deadline_before", "deadline_after"]


class TemplateFilterSet(django_filters.FilterSet):
    experiment = CharInFilter(
        field_name="experiment__slug", help_text="Experiment slug(s), comma-separated."
    )
    shared = django_filters.BooleanFilter(
        field_name="experiment", lookup_expr="isnull", help_text="Only shared (or only owned)."
    )
    name = django_filters.CharFilter(lookup_expr="icontains", help_text="Part of the name.")

    class Meta:
        model = WorkflowTemplate
        fields = ["experiment", "shared", "name"]

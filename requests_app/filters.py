"""Filters of the browser's request lists (the requests list and triage), as django-filter
filter sets: the same query string drives the page, its CSV export and saved filters."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Case, Exists, IntegerField, OuterRef, Q, QuerySet, Value, When

from .choices import IN_TRIAGE_STATES, PRIORITY_WEIGHT, RequestState
from .models import Sample


def priority_weight() -> Case:
    """``PRIORITY_WEIGHT`` as SQL, so the database orders by priority."""
    return Case(
        *[When(priority=p, then=Value(w)) for p, w in PRIORITY_WEIGHT.items()],
        default=Value(0),
        output_field=IntegerField(),
    )


def search_requests(queryset: QuerySet, value: str) -> QuerySet:
    """Number, title, ticket or the name of one of its samples (no duplicate rows: the
    samples are matched with EXISTS, not a join)."""
    value = value.strip()
    if not value:
        return queryset
    sample = Sample.objects.filter(request=OuterRef("pk"), name__icontains=value)
    return queryset.filter(
        Q(number__icontains=value)
        | Q(title__icontains=value)
        | Q(ticket__icontains=value)
        | Q(Exists(sample))
    )


class StateChoices(forms.CheckboxSelectMultiple):
    """States as a row of check boxes: every choice visible, no Ctrl-click (the empty
    multi-select it replaces showed four of ten states and needed Ctrl to pick two)."""

    def __init__(self, attrs=None):
        super().__init__({"class": "inline-choices", **(attrs or {})})


class RequestListFilter(django_filters.FilterSet):
    """The requests list: search, states, experiment, filed by me."""

    q = django_filters.CharFilter(
        label="Search",
        method="search",
        max_length=100,
        help_text="Number, title, ticket or sample name.",
    )
    state = django_filters.MultipleChoiceFilter(
        choices=RequestState.choices, widget=StateChoices, label="States"
    )
    experiment = django_filters.ChoiceFilter(
        field_name="experiment__slug", label="Experiment", empty_label="Any experiment"
    )
    mine = django_filters.BooleanFilter(
        label="Filed by me", method="filed_by_me", widget=forms.CheckboxInput
    )

    def __init__(self, data=None, queryset=None, *, request=None, experiments=(), **kwargs):
        super().__init__(data, queryset, request=request, **kwargs)
        self.filters["experiment"].extra["choices"] = [(e.slug, e.name) for e in experiments]

    def search(self, queryset, name, value):
        return search_requests(queryset, value)

    def filed_by_me(self, queryset, name, value):
        return queryset.filter(requester=self.request.user) if value else queryset


class TriageFilter(django_filters.FilterSet):
    """The triage queue: experiment, working group, states (awaiting a decision unless
    chosen), assignee, search."""

    DEFAULT_STATES = IN_TRIAGE_STATES

    q = django_filters.CharFilter(
        label="Search",
        method="search",
        max_length=100,
        help_text="Number, title, ticket or sample name.",
    )
    experiment = django_filters.ChoiceFilter(
        field_name="experiment__slug", label="Experiment", empty_label="Any experiment"
    )
    physics_group = django_filters.ChoiceFilter(
        label="Working group", field_name="physics_group_id", empty_label="Any group"
    )
    state = django_filters.MultipleChoiceFilter(
        choices=RequestState.choices,
        widget=StateChoices,
        label="States",
        help_text="None ticked: submitted and needs information.",
    )
    assignee = django_filters.ChoiceFilter(method="assigned_to", empty_label="Anyone")

    def __init__(
        self, data=None, queryset=None, *, request=None, experiments=(), groups=(), operators=()
    ):
        super().__init__(data, queryset, request=request)
        self.filters["experiment"].extra["choices"] = [(e.slug, e.name) for e in experiments]
        grouped: dict[str, list] = {}
        for group in groups:
            grouped.setdefault(group.experiment.name, []).append((group.id, group.name))
        self.filters["physics_group"].extra["choices"] = list(grouped.items())
        self.filters["assignee"].extra["choices"] = [
            ("none", "Unassigned"),
            ("me", "Me"),
            *[(str(u.pk), u.get_username()) for u in operators],
        ]

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        if not self.form.cleaned_data.get("state"):
            queryset = queryset.filter(state__in=self.DEFAULT_STATES)
        return queryset

    def search(self, queryset, name, value):
        return search_requests(queryset, value)

    def assigned_to(self, queryset, name, value):
        if value == "none":
            return queryset.filter(assignee__isnull=True)
        if value == "me":
            return queryset.filter(assignee=self.request.user)
        return queryset.filter(assignee_id=int(value)) if value else queryset

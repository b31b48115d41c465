"""The browser's request tables (django-tables2): columns, what each sorts by, and the
labels the phone layout shows above each cell. Sorting and pagination are the library's
(``?sort=deadline``, ``?sort=-priority``, ``?page=2``); the query string also keeps the
filters, so a sorted, filtered page is a link that can be shared or saved."""

from __future__ import annotations

import django_tables2 as tables
from django.utils.safestring import mark_safe

from .models import ProductionRequest

CELLS = "requests_app/cells/"


def labelled(label: str, **attrs) -> dict:
    """Cell attributes: the column name the phone layout shows above each value."""
    return {"td": {"data-label": label, **attrs}}


class RequestTable(tables.Table):
    """The requests list. Unsorted it keeps the view's order (most recently changed)."""

    number = tables.TemplateColumn(
        template_name=CELLS + "request.html",
        verbose_name="Request",
        order_by=("number",),
        attrs=labelled("Request"),
    )
    experiment = tables.TemplateColumn(
        template_name=CELLS + "experiment.html",
        verbose_name="Experiment / group",
        order_by=("experiment__name", "physics_group__name", "id"),
        attrs=labelled("Experiment"),
    )
    state = tables.TemplateColumn(
        template_name=CELLS + "state.html", order_by=("state", "id"), attrs=labelled("State")
    )
    priority = tables.TemplateColumn(
        template_name=CELLS + "priority.html",
        order_by=("priority_weight", "id"),
        attrs=labelled("Priority"),
    )
    deadline = tables.TemplateColumn(
        template_name=CELLS + "deadline.html",
        order_by=("deadline", "id"),
        attrs=labelled("Deadline"),
    )
    samples = tables.TemplateColumn(
        template_name=CELLS + "samples.html",
        accessor="sample_count",
        verbose_name="Samples",
        order_by=("sample_count", "id"),
        attrs=labelled("Samples"),
    )
    assignee = tables.Column(
        accessor="assignee__username",
        default="—",
        order_by=("assignee__username", "id"),
        attrs=labelled("Assignee"),
    )
    updated = tables.TemplateColumn(
        template_name=CELLS + "updated.html",
        verbose_name="Changed",
        order_by=("updated", "id"),
        attrs=labelled("Changed"),
    )

    class Meta:
        model = ProductionRequest
        fields = ()
        sequence = (
            "number",
            "experiment",
            "state",
            "priority",
            "deadline",
            "samples",
            "assignee",
            "updated",
        )
        template_name = "requests_app/_table.html"
        attrs = {"class": "stack sortable"}
        empty_text = "No requests match."
        caption = "Production requests"


class PickColumn(tables.CheckBoxColumn):
    """The tick of a request in the bulk form, kept ticked after a refused action."""

    def __init__(self, **kwargs):
        super().__init__(
            accessor="pk",
            attrs={
                "th__input": {"data-select-all": "", "aria-label": "Select all on this page"},
                "td__input": {
                    "name": "ids",
                    "id": lambda record: f"pick-{record.pk}",
                    "aria-label": lambda record: f"Select {record.number}",
                },
                "td": {"data-label": "Select"},
            },
            **kwargs,
        )

    def render(self, value, bound_column, record, table):
        html = super().render(value, bound_column, record)
        if record.pk in table.picked:  # ticked before a refused action: keep it ticked
            html = mark_safe(html.replace("<input ", '<input checked="checked" ', 1))  # noqa: S308
        return html


class TriageTable(RequestTable):
    """The triage queue: a tick per request for the bulk form; unsorted it keeps the
    queue's urgency order (nearest deadline, highest priority, oldest)."""

    pick = PickColumn(verbose_name="Select")
    number = tables.TemplateColumn(
        template_name=CELLS + "request_requester.html",
        verbose_name="Request",
        order_by=("number",),
        attrs=labelled("Request"),
    )

    class Meta(RequestTable.Meta):
        sequence = (
            "pick",
            "number",
            "experiment",
            "deadline",
            "priority",
            "state",
            "samples",
            "assignee",
            "updated",
        )
        empty_text = "Nothing awaits a decision with these filters."
        caption = "Requests awaiting a decision"

    def __init__(self, *args, picked: set[int] = frozenset(), **kwargs):
        super().__init__(*args, **kwargs)
        self.picked = picked

"""The requests list: filtered (django-filter), sorted and paginated (django-tables2),
exported as CSV exactly as filtered and sorted, and saved filters per user."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet, Sum
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_tables2 import RequestConfig

from experiments.models import Experiment

from ..filters import RequestListFilter, priority_weight
from ..models import ProductionRequest, SavedFilter
from ..services import can_file
from ..services.saved_filters import delete_filter, save_filter
from ..tables import RequestTable
from .exports import export_csv, saved_filters_context

LIST_PAGE_SIZE = 25
MAX_EXPORT = 50_000  # rows; a CSV beyond that is a job for the API
EXPORT_CHUNK = 2000


def request_rows(user) -> QuerySet:
    """Every request the user may see, with what the list shows, most recently changed first."""
    return (
        ProductionRequest.objects.visible_to(user)
        .select_related("experiment", "physics_group", "assignee", "requester")
        .annotate(
            sample_count=Count("samples"),
            events=Sum("samples__events"),
            priority_weight=priority_weight(),
        )
        .order_by("-updated", "-id")
    )


@login_required
def request_list(request):
    """The requests of the user's experiments (all of them for operators)."""
    user = request.user
    experiments = list(Experiment.objects.visible_to(user).order_by("name"))
    filters = RequestListFilter(
        request.GET, request_rows(user), request=request, experiments=experiments
    )
    rows = filters.qs if filters.is_valid() else ProductionRequest.objects.none()
    table = RequestTable(rows)
    RequestConfig(request, paginate={"per_page": LIST_PAGE_SIZE}).configure(table)
    if request.GET.get("format") == "csv":
        return export_csv(table, "requests")
    return render(
        request,
        "requests_app/request_list.html",
        {
            "filters": filters,
            "table": table,
            "page": table.page,
            "can_file_any": any(can_file(user, e) for e in experiments),
            **saved_filters_context(request, SavedFilter.Page.REQUESTS),
        },
    )


LIST_URLS = {SavedFilter.Page.REQUESTS: "requests:list", SavedFilter.Page.TRIAGE: "requests:triage"}


@login_required
@require_POST
def saved_filter_save(request):
    """Save the list's current filters under a name; back to the list with them."""
    page = request.POST.get("page", "")
    query = request.POST.get("query", "")
    target = reverse(LIST_URLS.get(page, "requests:list"))
    try:
        saved = save_filter(request.user, page, request.POST.get("name", ""), query)
    except ValidationError as exc:
        messages.error(request, "Filter not saved: " + " ".join(exc.messages))
        return redirect(f"{target}?{query}" if query else target)
    messages.success(request, f"Saved filter “{saved.name}”.")
    return redirect(f"{target}?{saved.query}" if saved.query else target)


@login_required
@require_POST
def saved_filter_delete(request, pk: int):
    page = request.POST.get("page", "")
    try:
        delete_filter(request.user, pk)
    except SavedFilter.DoesNotExist:
        messages.error(request, "That saved filter no longer exists.")
    else:
        messages.success(request, "Saved filter deleted.")
    return redirect(LIST_URLS.get(page, "requests:list"))

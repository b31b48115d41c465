"""The operators' triage queue: requests awaiting a decision, most urgent first."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet, Sum
from django.shortcuts import redirect, render
from django_tables2 import RequestConfig

from common.errors import PermissionDenied as NotAllowed
from experiments.access import operator_required
from experiments.models import Experiment, PhysicsGroup
from experiments.services import operator_accounts

from ..choices import RequestState
from ..filters import TriageFilter, priority_weight
from ..forms import BulkForm
from ..models import ProductionRequest, SavedFilter
from ..services import TransitionError, assign, transition
from ..tables import TriageTable
from .exports import export_csv, saved_filters_context

PAGE_SIZE = 50
MAX_BULK = 100


def triage_rows(user) -> QuerySet:
    """The queue before filters: nearest deadline first, then highest priority, then oldest."""
    return (
        ProductionRequest.objects.visible_to(user)
        .select_related("experiment", "physics_group", "assignee", "requester")
        .annotate(
            priority_weight=priority_weight(),
            sample_count=Count("samples"),
            events=Sum("samples__events"),
        )
        .order_by("deadline", "-priority_weight", "submitted", "id")
    )


@operator_required
def triage(request):
    """The queue (GET) and its bulk actions (POST), each request's result reported.

    A bulk action refused as a whole (nothing ticked, no action chosen, a missing
    note) comes back as the same page with the action, the ticks and the note as
    they were, so the second try does what the first meant; an applied one
    redirects (POST/redirect/GET) with one message per request.
    """
    experiments = list(Experiment.objects.order_by("name"))
    groups = list(PhysicsGroup.objects.select_related("experiment").order_by("name"))
    operators = list(operator_accounts())
    bulk = BulkForm(request.POST or None, operators=operators, prefix="bulk")
    picked = _picked(request)
    if request.method == "POST":
        if picked and bulk.is_valid():
            _apply(request, bulk, picked)
            # Back to the same filters and page (the form posts to the current URL).
            return redirect(request.get_full_path())
        status = 400
    else:
        status = 200
    filters = TriageFilter(
        request.GET,
        triage_rows(request.user),
        request=request,
        experiments=experiments,
        groups=groups,
        operators=operators,
    )
    rows = filters.qs if filters.is_valid() else ProductionRequest.objects.none()
    table = TriageTable(rows, picked=set(map(int, picked)))
    RequestConfig(request, paginate={"per_page": PAGE_SIZE}).configure(table)
    if request.method == "GET" and request.GET.get("format") == "csv":
        return export_csv(table, "triage")
    return render(
        request,
        "requests_app/triage.html",
        {
            "filters": filters,
            "table": table,
            "page": table.page,
            "bulk": bulk,
            "nothing_picked": request.method == "POST" and not picked,
            "default_states": [s.label for s in RequestState if s in TriageFilter.DEFAULT_STATES],
            **saved_filters_context(request, SavedFilter.Page.TRIAGE),
        },
        status=status,
    )


def _picked(request) -> list[str]:
    """The ticked request ids, in order, without repeats, at most ``MAX_BULK``."""
    ids = (i for i in request.POST.getlist("ids") if i.isdigit())
    return list(dict.fromkeys(ids))[:MAX_BULK]


def _apply(request, form: BulkForm, ids: list[str]) -> None:
    """Apply one action to every selected request; one message per request."""
    action, note = form.cleaned_data["action"], form.cleaned_data["note"]
    selected = {
        r.pk: r
        for r in ProductionRequest.objects.visible_to(request.user)
        .select_related("experiment")
        .filter(pk__in=ids)
    }
    done = 0
    for pk in map(int, ids):
        obj = selected.get(pk)
        if obj is None:
            messages.error(request, f"Request #{pk} not found.")
            continue
        try:
            if action == "assign":
                assignee = form.operators.get(form.cleaned_data["assignee"])
                assign(obj, request.user, assignee)
                result = f"assigned to {assignee.get_username()}" if assignee else "unassigned"
            else:
                obj = transition(obj, action, request.user, note)
                result = obj.get_state_display().lower()
        except TransitionError as exc:
            messages.error(request, f"{obj.number}: {_sentence(exc.detail, exc.reasons)}")
        except (NotAllowed, ValidationError) as exc:
            text = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            messages.error(request, f"{obj.number}: {text}")
        else:
            done += 1
            messages.success(request, f"{obj.number} {result}")
    label = dict(form.fields["action"].choices)[action].lower()
    level = messages.SUCCESS if done == len(ids) else messages.WARNING
    messages.add_message(request, level, f"{label}: {done} of {len(ids)} done.")


def _sentence(detail: str, reasons: list[str]) -> str:
    """``"The request is not eligible ...: reason; reason"``, lower-cased to follow a number."""
    text = detail.rstrip(".")
    text = text[:1].lower() + text[1:]
    return f"{text}: {'; '.join(reasons)}" if reasons else f"{text}."

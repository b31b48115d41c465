"""The accounting pages: the CPU-hour ledger (with its CSV) for everyone signed in, over the
experiments they may see, and the allocation form for operators.

A fixed number of queries whatever the number of attempts (``monitoring.services.accounting``:
one aggregate per level); visibility through ``visible_to``.
"""

from __future__ import annotations

import csv
import io

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from campaigns.models import Job
from experiments.models import Experiment
from experiments.models.visibility import is_operator

from .forms import AllocationForm, LedgerFilterForm
from .models import Allocation
from .services import accounting
from .services.allocations import delete_allocation, save_allocation
from .views import operator_required

LEVEL_TITLES = {
    "experiment": "Experiments",
    "group": "Physics working groups",
    "campaign": "Campaigns",
    "request": "Requests",
}


def _ledger(request) -> tuple[LedgerFilterForm, accounting.Ledger, Experiment | None]:
    """The ledger the viewer asked for (``?experiment=&start=&end=``), narrowed to what they
    may see; a bad period is shown on the form and the default period used."""
    experiments = list(Experiment.objects.visible_to(request.user).order_by("name"))
    form = LedgerFilterForm(request.GET or None, experiments=experiments)
    start = end = None
    chosen = None
    if form.is_bound and form.is_valid():
        start, end = form.cleaned_data["start"], form.cleaned_data["end"]
        slug = form.cleaned_data["experiment"]
        chosen = next((e for e in experiments if e.slug == slug), None) if slug else None
    elif form.is_bound and request.GET.get("experiment"):
        chosen = next((e for e in experiments if e.slug == request.GET["experiment"]), None)
        if chosen is None:
            raise Http404("No such experiment you may see.")
    jobs = Job.objects.visible_to(request.user)
    allocations = Allocation.objects.visible_to(request.user)
    if chosen is not None:
        jobs = jobs.filter(stage__campaign__experiment=chosen)
        allocations = allocations.filter(experiment=chosen)
    return form, accounting.build_ledger(jobs, allocations, start, end), chosen


@login_required
def accounting_page(request):
    """CPU hours used and wasted per experiment, group, campaign and request, against the
    allocations."""
    form, ledger, chosen = _ledger(request)
    return render(
        request,
        "monitoring/accounting.html",
        {
            "form": form,
            "ledger": ledger,
            "total": ledger.total(),
            "levels": [(LEVEL_TITLES[k], k, rows) for k, rows in ledger.levels.items()],
            "chosen": chosen,
            "operator": is_operator(request.user),
            "query": request.GET.urlencode(),
        },
    )


def ledger_csv(ledger: accounting.Ledger) -> str:
    """The ledger as CSV: one row per allocation, then per level and row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "level",
            "experiment",
            "label",
            "name",
            "period_start",
            "period_end",
            "attempts",
            "succeeded",
            "wasted",
            "core_hours",
            "succeeded_core_hours",
            "wasted_core_hours",
            "cpu_hours",
            "efficiency",
            "max_rss_kb",
            "allocated_core_hours",
            "used_percent",
            "projected_core_hours",
            "allocation_status",
        ]
    )

    def usage(row: accounting.Usage) -> list:
        return [
            row.attempts,
            row.succeeded,
            row.wasted,
            f"{row.core_hours:.3f}",
            f"{row.succeeded_core_hours:.3f}",
            f"{row.wasted_core_hours:.3f}",
            f"{row.cpu_hours:.3f}",
            "" if row.efficiency is None else f"{row.efficiency:.3f}",
            "" if row.max_rss_kb is None else row.max_rss_kb,
        ]

    for status in ledger.allocations:
        a = status.allocation
        projected = status.projected_core_hours
        writer.writerow(
            [
                "allocation",
                a.experiment.slug,
                a.experiment.slug,
                a.note,
                a.start.isoformat(),
                a.end.isoformat(),
                *usage(status.used),
                a.cpu_hours,
                f"{status.used_percent:.1f}",
                "" if projected is None else f"{projected:.3f}",
                status.status,
            ]
        )
    for level, rows in ledger.levels.items():
        for row in rows:
            writer.writerow(
                [
                    level,
                    row.experiment,
                    row.label,
                    row.name,
                    ledger.start.isoformat(),
                    ledger.end.isoformat(),
                    *usage(row),
                    "",
                    "",
                    "",
                    "",
                ]
            )
    return out.getvalue()


@login_required
def accounting_csv(request):
    """The accounting page's ledger as CSV (same filters)."""
    _form, ledger, chosen = _ledger(request)
    response = HttpResponse(ledger_csv(ledger), content_type="text/csv; charset=utf-8")
    scope = chosen.slug if chosen else "all"
    response["Content-Disposition"] = (
        f'attachment; filename="accounting-{scope}-{ledger.start}-{ledger.end}.csv"'
    )
    return response


@operator_required
@require_http_methods(["GET", "POST"])
def allocation_form(request, pk: int | None = None):
    """Set, change or remove an experiment's allocation for a period (operators)."""
    allocation = get_object_or_404(Allocation, pk=pk) if pk else None
    if request.method == "POST" and allocation is not None and "delete" in request.POST:
        delete_allocation(allocation, request.user)
        messages.success(request, "Allocation removed.")
        return redirect("monitoring:accounting")
    form = AllocationForm(request.POST or None, instance=allocation)
    if request.method == "POST" and form.is_valid():
        try:
            saved = save_allocation(form.instance, request.user, created=allocation is None)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(
                request,
                f"Allocation of {saved.cpu_hours} core hours for {saved.experiment.name}, "
                f"{saved.start} to {saved.end}, saved.",
            )
            url = reverse("monitoring:accounting")
            return redirect(f"{url}?experiment={saved.experiment.slug}")
    return render(
        request,
        "monitoring/allocation_form.html",
        {"form": form, "allocation": allocation, "today": timezone.localdate()},
    )

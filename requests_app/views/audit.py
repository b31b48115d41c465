"""``/audit/``: the audit trail for operators, read only.

Two logs: records that decide access and eligibility (``AuditEvent``: role grants, SLA,
training, production code, from the services and the Django admin), and every request
transition and recorded edit (``Transition``). Neither can be changed from anywhere.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import render

from experiments.access import operator_required
from experiments.models import AuditEvent, Experiment

from ..models import Transition

PAGE_SIZE = 50
LOGS = {"records": "Access and eligibility", "transitions": "Request transitions"}


@operator_required
def audit(request):
    log = request.GET.get("log") if request.GET.get("log") in LOGS else "records"
    slug = request.GET.get("experiment", "")[:49]
    query = request.GET.get("q", "").strip()[:100]
    if log == "records":
        rows = AuditEvent.objects.visible_to(request.user).select_related("actor", "experiment")
        if slug:
            rows = rows.filter(experiment__slug=slug)
        if query:
            rows = rows.filter(Q(target__icontains=query) | Q(action__icontains=query))
    else:
        rows = Transition.objects.visible_to(request.user).select_related(
            "actor", "request__experiment"
        )
        if slug:
            rows = rows.filter(request__experiment__slug=slug)
        if query:
            rows = rows.filter(
                Q(request__number__icontains=query)
                | Q(action__icontains=query)
                | Q(note__icontains=query)
            )
    page = Paginator(rows.order_by("-created", "-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "requests_app/audit.html",
        {
            "log": log,
            "logs": LOGS,
            "page": page,
            "experiments": Experiment.objects.visible_to(request.user).order_by("name"),
            "experiment": slug,
            "q": query,
        },
    )

"""Home: what waits for the signed-in user, by role, and where to go next."""

from __future__ import annotations

import logging

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from experiments.models import Experiment
from experiments.models.visibility import experiment_roles, is_operator

from ..choices import RequestState
from ..extensions import home_sections
from ..filters import priority_weight
from ..models import ProductionRequest

log = logging.getLogger(__name__)

LIMIT = 10  # rows of each list; its link opens the whole list


def _waiting_elsewhere(user) -> list[dict]:
    """The lists other apps add (``requests_app.extensions``); one failing never hides
    home."""
    sections = []
    for build in home_sections():
        try:
            section = build(user)
        except Exception:  # advice, like the forecast: the page must still open
            log.exception("home section %s failed", getattr(build, "__qualname__", build))
            continue
        if section:
            sections.append(section)
    return sections


@login_required
def home(request):
    """Each role's next steps: the liaison's requests that need their answer and their
    drafts; the operator's triage queue and blocked campaigns; then where to go."""
    user = request.user
    experiments = list(Experiment.objects.visible_to(user).order_by("name"))
    roles = experiment_roles(user)
    liaison_of = [e for e in experiments if roles.get(e.id) == "liaison"]
    operator = is_operator(user)
    visible = ProductionRequest.objects.visible_to(user).select_related("experiment")
    context = {
        "experiments": experiments,
        "liaison_of": liaison_of,
        "physicist_of": [e for e in experiments if roles.get(e.id) == "physicist"],
        "operator": operator,
        "needs_answer": [],
        "drafts": [],
        "to_triage": [],
        "waiting": [],
    }
    if liaison_of:
        ids = [e.id for e in liaison_of]
        context["needs_answer"] = list(
            visible.filter(state=RequestState.NEEDS_INFO, experiment_id__in=ids).order_by(
                "deadline", "id"
            )[:LIMIT]
        )
        context["drafts"] = list(
            visible.filter(state=RequestState.DRAFT, requester=user).order_by("-updated", "-id")[
                :LIMIT
            ]
        )
    if operator:
        queue = visible.filter(state=RequestState.SUBMITTED).annotate(weight=priority_weight())
        context["to_triage"] = list(
            queue.order_by("deadline", "-weight", "submitted", "id")[:LIMIT]
        )
        context["to_triage_count"] = queue.count()
    context["waiting"] = _waiting_elsewhere(user)
    return render(request, "requests_app/home.html", context)

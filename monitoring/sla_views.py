"""The SLA page: the service-desk clock aggregated per experiment and operator, by month."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from experiments.models import Experiment

from .services import sla


@login_required
def sla_page(request):
    """Median and 90th percentile of each step per experiment and month of submission,
    then per operator (who answered first); only the experiments the viewer may see."""
    experiments = list(Experiment.objects.visible_to(request.user).order_by("name"))
    per_experiment, per_operator = sla.aggregates(experiments)
    return render(
        request,
        "monitoring/sla.html",
        {
            "experiments": experiments,
            "per_experiment": per_experiment,
            "per_operator": per_operator,
            "measures": [(k, label) for k, (label, _t) in sla.MEASURES.items()],
        },
    )

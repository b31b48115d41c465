"""Browser pages of the intake app."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from .models import Experiment
from .models.visibility import experiment_roles, is_operator


@login_required
def home(request):
    """Tell each role where to go: operators to triage, liaisons to their requests."""
    experiments = Experiment.objects.visible_to(request.user).order_by("name")
    roles = experiment_roles(request.user)
    return render(
        request,
        "requests_app/home.html",
        {
            "experiments": experiments,
            "liaison_of": [e for e in experiments if roles.get(e.id) == "liaison"],
            "physicist_of": [e for e in experiments if roles.get(e.id) == "physicist"],
            "operator": is_operator(request.user),
        },
    )


@login_required
def request_detail(request, number):
    """Placeholder until the intake pages land."""
    from django.shortcuts import get_object_or_404

    from .models import ProductionRequest

    obj = get_object_or_404(ProductionRequest.objects.visible_to(request.user), number=number)
    return render(request, "requests_app/home.html", {"object": obj})

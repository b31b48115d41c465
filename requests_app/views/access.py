"""Who may open which page; the data itself is scoped by ``visible_to``."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from experiments.models.visibility import is_operator

from ..models import ProductionRequest


def operator_required(view):
    """Signed in (else to the login page) and an operator (else 403)."""

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not is_operator(request.user):
            raise PermissionDenied("Only OPOS operators use this page.")
        return view(request, *args, **kwargs)

    return wrapper


def visible_request(user, number: str) -> ProductionRequest:
    """The request numbered ``number`` if ``user`` may see it; 404 otherwise.

    A request of another experiment answers 404, not 403: its existence is
    not the visitor's business.
    """
    return get_object_or_404(
        ProductionRequest.objects.visible_to(user).select_related(
            "experiment", "physics_group", "requester", "assignee"
        ),
        number=number,
    )


def edit_mode(fields: set[str]) -> str | None:
    """Which edit page ``editable_fields`` leads to: the full form, an operator's changes, none."""
    if "samples" in fields:
        return "full"
    if "priority" in fields:
        return "operator"
    return None

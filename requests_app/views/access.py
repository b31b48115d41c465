"""Which request a visitor may open; the data itself is scoped by ``visible_to``.

Who may open an operators' page is ``experiments.access.operator_required``."""

from django.shortcuts import get_object_or_404

from ..models import ProductionRequest


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

"""Who may open which campaign page, and how refusals reach the page."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from experiments.models.visibility import is_operator

from ..models import Campaign
from ..services import CampaignError


def visible_campaign(user, pk: int) -> Campaign:
    """The campaign if ``user`` may see it; 404 otherwise (never 403: its existence is
    not the visitor's business)."""
    return get_object_or_404(
        Campaign.objects.visible_to(user).select_related("experiment", "created_by"), pk=pk
    )


def operator_on(view):
    """An operator's action on a campaign: 404 unless visible, then 403 unless operator.

    The view receives the campaign instead of its id.
    """

    @wraps(view)
    @login_required
    def wrapper(request, pk: int, *args, **kwargs):
        campaign = visible_campaign(request.user, pk)
        if not is_operator(request.user):
            raise PermissionDenied("Only OPOS operators act on campaigns.")
        return view(request, campaign, *args, **kwargs)

    return wrapper


def refused(request, exc: CampaignError) -> None:
    """Show a refusal and each of its reasons as messages on the next page."""
    messages.error(request, exc.detail)
    for reason in exc.reasons:
        messages.error(request, reason, extra_tags="reason")


def form_errors(form, exc: CampaignError) -> None:
    """Put a refusal's reasons next to the fields they name (``"field: message"``)."""
    if not exc.reasons:
        form.add_error(None, exc.detail)
    for reason in exc.reasons:
        field, _sep, message = reason.partition(": ")
        if field in form.fields and message:
            form.add_error(field, message)
        else:
            form.add_error(None, reason)

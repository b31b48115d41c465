"""The commitments page of a request or a campaign: the tracker's proposal, confirmed or
edited by an operator (right after an approval or a launch, which lead here), then the
promises with their history, changed only with a reason."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from campaigns.models import Campaign
from requests_app.models import ProductionRequest

from .forms import CommitmentForm
from .models import CommitmentChange
from .services import commitments as promises
from .views import operator_required


def _page(request, target, back: str):
    existing = (
        promises.of_campaign(target.pk)
        if isinstance(target, Campaign)
        else promises.of_request(target.pk)
    )
    changing = bool(existing)
    kinds = promises.kinds_of(target)
    proposed = {} if changing else promises.proposal(target)
    initial = {c.kind: c.promised_at for c in existing} if changing else dict(proposed)
    form_kwargs = {"kinds": kinds, "labels": promises.SHORT, "changing": changing}
    status = 200
    if request.method == "POST":
        form = CommitmentForm(request.POST, initial=initial, **form_kwargs)
        if form.is_valid():
            try:
                if changing:
                    moved = _apply_changes(request, existing, form)
                    if moved:
                        messages.success(request, f"{moved} commitment(s) changed.")
                        return redirect(back)
                    form.add_error(None, "No date changed: nothing to record.")
                else:
                    promises.confirm(target, request.user, form.moments(), proposed)
                    messages.success(request, "Commitments recorded.")
                    return redirect(back)
            except promises.CommitmentError as exc:
                if exc.kind == "forbidden":
                    raise PermissionDenied(exc.detail) from exc
                form.add_error(None, exc.detail)
            except ValidationError as exc:
                _attach(form, exc)
        status = 400
    else:
        form = CommitmentForm(initial=initial, **form_kwargs)
    history = list(
        CommitmentChange.objects.filter(commitment__in=[c.pk for c in existing])
        .select_related("actor", "commitment")
        .order_by("-created", "-id")
    )
    context = {
        "target": target,
        "is_campaign": isinstance(target, Campaign),
        "form": form,
        "changing": changing,
        "existing": existing,
        "proposed": proposed,
        "history": history,
        "back": back,
        "labels": promises.SHORT,
    }
    return render(request, "monitoring/commitments.html", context, status=status)


def _apply_changes(request, existing, form: CommitmentForm) -> int:
    """Every moved date, each with the form's reason; all or none (atomic)."""
    from django.db import transaction

    moved = [c for c in existing if form.cleaned_data[c.kind] != c.promised_at]
    if moved and not (form.cleaned_data.get("reason") or "").strip():
        raise ValidationError({"reason": ["a reason is required to change a commitment"]})
    with transaction.atomic():
        # Latest first when moving later, earliest first when moving earlier, so that each
        # step keeps the order start <= full speed <= 50% <= 100%.
        later = sorted(
            (c for c in moved if form.cleaned_data[c.kind] > c.promised_at),
            key=lambda c: -promises.CAMPAIGN_KINDS.index(c.kind),
        )
        earlier = sorted(
            (c for c in moved if form.cleaned_data[c.kind] < c.promised_at),
            key=lambda c: promises.CAMPAIGN_KINDS.index(c.kind),
        )
        for c in later + earlier:
            promises.change(c, request.user, form.cleaned_data[c.kind], form.cleaned_data["reason"])
    return len(moved)


def _attach(form: CommitmentForm, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for name, errors in exc.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


@operator_required
@require_http_methods(["GET", "POST"])
def request_commitments(request, number: str):
    target = get_object_or_404(
        ProductionRequest.objects.visible_to(request.user).select_related("experiment"),
        number=number,
    )
    return _page(request, target, reverse("monitoring:request", args=[target.number]))


@operator_required
@require_http_methods(["GET", "POST"])
def campaign_commitments(request, pk: int):
    target = get_object_or_404(
        Campaign.objects.visible_to(request.user).select_related("experiment"), pk=pk
    )
    return _page(request, target, reverse("monitoring:campaign", args=[target.pk]))

"""A confirmation step before the actions that cannot be undone (cancel, reject).

The request page's button for such an action leads here (a page, not a script:
the CSP allows no inline script and the page must work without JavaScript). The
page says what happens and asks for the reason, which is recorded with the
transition; only its own form takes the action.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render

from ..models import ProductionRequest
from ..services import TransitionError, transition
from ..services.transitions import actor_kinds
from ..workflow import ACTIONS
from .access import visible_request

# What each irreversible action does, said on its confirmation page.
CONFIRM_FIRST: dict[str, str] = {
    "cancel": (
        "The request becomes cancelled and no further job of it is submitted. "
        "This cannot be undone: to produce these samples later, file a new request."
    ),
    "reject": (
        "The request becomes rejected and your reason is sent to the requester. "
        "This cannot be undone: the liaison would have to file a new request."
    ),
}
NOTES_KEY = "opos-action-notes"


class ConfirmForm(forms.Form):
    """The reason for an irreversible action: required, recorded, sent to the requester."""

    note = forms.CharField(
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Recorded in the request's history and sent to the requester and watchers.",
    )

    def __init__(self, *args, action: str, **kwargs):
        super().__init__(*args, **kwargs)
        verb = ACTIONS[action].label.lower()
        self.fields["note"].label = f"Why {verb} this request?"
        self.fields["note"].error_messages["required"] = f"A reason is required to {verb}."

    def clean_note(self) -> str:
        note = self.cleaned_data["note"].strip()
        if not note:
            raise forms.ValidationError(self.fields["note"].error_messages["required"])
        return note


def stash_note(request, number: str, action: str, note: str) -> None:
    """Keep a typed note across a redirect, to give it back in its field."""
    if note:
        notes = request.session.get(NOTES_KEY, {})
        notes[number] = {action: note}
        request.session[NOTES_KEY] = notes


def take_notes(request, number: str) -> dict[str, str]:
    """The notes kept for the request's page (once: they are forgotten when read)."""
    notes = request.session.get(NOTES_KEY)
    if not notes or number not in notes:
        return {}
    kept = notes.pop(number)
    request.session[NOTES_KEY] = notes
    return kept


@login_required
def request_confirm(request, number: str, action: str):
    """Confirm an irreversible action (GET: the question; POST: the action, then back)."""
    if action not in CONFIRM_FIRST:
        raise Http404("No confirmation step for this action.")
    obj = visible_request(request.user, number)
    spec = ACTIONS[action]
    if not spec.actors & actor_kinds(request.user, obj):
        raise PermissionDenied(f"You may not {spec.label.lower()} this request.")
    if obj.state not in spec.sources:
        messages.error(
            request,
            f"{obj.number} is {obj.get_state_display().lower()}: it cannot be "
            f"{'cancelled' if action == 'cancel' else 'rejected'} now.",
        )
        return redirect(obj)
    if request.method == "POST":
        form = ConfirmForm(request.POST, action=action)
        if form.is_valid():
            return _take(request, obj, action, form.cleaned_data["note"])
        status = 400
    else:
        kept = take_notes(request, obj.number).get(action, "")
        form = ConfirmForm(initial={"note": kept}, action=action)
        status = 200
    context = {"object": obj, "action": spec, "consequence": CONFIRM_FIRST[action], "form": form}
    return render(request, "requests_app/request_confirm.html", context, status=status)


def _take(request, obj: ProductionRequest, action: str, note: str):
    try:
        obj = transition(obj, action, request.user, note)
    except TransitionError as exc:
        if exc.kind == "forbidden":
            raise PermissionDenied(exc.detail) from exc
        messages.error(request, exc.detail)
        for reason in exc.reasons:
            messages.error(request, reason, extra_tags="reason")
        return redirect(obj)
    messages.success(request, f"{obj.number} is now {obj.get_state_display().lower()}.")
    return redirect(obj)

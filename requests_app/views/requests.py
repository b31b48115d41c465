"""A request's page with its decisions, comments and watchers."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from common.decisions import EffectError, decision_url, effect_shown
from common.errors import PermissionDenied as NotAllowed
from experiments.models.visibility import is_operator

from ..choices import TERMINAL_STATES, UNDECIDED_STATES, RequestState
from ..extensions import request_forecaster, request_promises
from ..forms import ActionForm, AssignForm, CommentForm, attach_errors
from ..models import ProductionRequest
from ..services import (
    TransitionError,
    add_comment,
    allowed_actions,
    assign,
    can_comment,
    editable_fields,
    sla_checks,
    transition,
)
from ..services.transitions import actor_kinds
from ..services.watching import set_watching
from ..workflow import ACTIONS, Actor
from .access import edit_mode, visible_request
from .confirm import CONFIRM_FIRST, stash_note, take_notes

log = logging.getLogger(__name__)

# Buttons that move a request on stand out; those that end or refuse it look dangerous.
PRIMARY = {"submit", "approve", "resume", "close"}
DANGEROUS = {"reject", "cancel"}


@dataclass
class TimelineEntry:
    """One line of a request's history: a transition, an edit or a comment."""

    kind: str  # "transition", "edit", "comment"
    created: Any
    who: Any
    obj: Any


def _timeline(obj: ProductionRequest) -> list[TimelineEntry]:
    entries = [
        TimelineEntry("edit" if t.action == "edit" else "transition", t.created, t.actor, t)
        for t in obj.transitions.select_related("actor")
    ]
    entries += [
        TimelineEntry("comment", c.created, c.author, c)
        for c in obj.comments.select_related("author")
    ]
    # Stable sort: at the same instant, the transition comes before its comment.
    return sorted(entries, key=lambda e: e.created)


def _hold(obj: ProductionRequest) -> dict[str, Any]:
    """Hold time: what is accumulated, and the current hold with its reason."""
    current = 0
    if obj.state == RequestState.ON_HOLD and obj.hold_started:
        current = max(int((timezone.now() - obj.hold_started).total_seconds()), 0)
    return {"current": current, "total": obj.hold_seconds + current}


def _forecast(obj: ProductionRequest):
    """Execution's projection for the request, or None (``requests_app.extensions``).

    None before approval too: "on track, would finish around D" on a request nobody has
    decided on (perhaps ineligible) reads as a promise; the page says "not scheduled yet".
    """
    forecaster = request_forecaster()
    if forecaster is None or obj.state in TERMINAL_STATES or obj.state in UNDECIDED_STATES:
        return None
    try:
        return forecaster(obj)
    except Exception:  # a forecast is advice: the request page must still open
        log.exception("forecast failed for %s", obj.number)
        return None


def _promises(obj: ProductionRequest) -> dict | None:
    """The read side's commitments and service-desk clock (``requests_app.extensions``)."""
    promises = request_promises()
    if promises is None or obj.state == RequestState.DRAFT:
        return None
    try:
        return promises(obj)
    except Exception:  # advice, as the forecast: the request page must still open
        log.exception("commitments failed for %s", obj.number)
        return None


def _fix_links(user, obj: ProductionRequest, fields: set[str], operator: bool) -> dict:
    """Where each checklist item is fixed, for the pages this viewer may open."""
    links: dict[str, list[tuple[str, str]]] = {"sla": [], "code": [], "training": [], "ticket": []}
    if user.is_staff:
        url = reverse("admin:experiments_experiment_change", args=[obj.experiment_id])
        links["sla"].append(("Record the SLA acceptance (admin)", url))
    if operator:
        links["code"] += [
            ("Registered production code", reverse("experiments:code_list")),
            ("Register code", reverse("experiments:code_new")),
        ]
        url = reverse("experiments:training_new") + f"?experiment={obj.experiment_id}"
        links["training"] += [
            ("Record a training session", url),
            ("Training records", reverse("experiments:training_list")),
        ]
    if "ticket" in fields:
        url = reverse("requests:edit", args=[obj.number])
        links["ticket"].append(("Correct the ticket reference", url))
    elif operator and obj.state == RequestState.SUBMITTED:
        # Only the liaison edits the ticket, once the request is sent back to them.
        links["ticket"].append(("Ask the liaison for information", "#note-request_info"))
    return links


def _needs_answer(user, obj: ProductionRequest, timeline: list[TimelineEntry]) -> dict | None:
    """For a liaison of a request in needs-info: the operators' question, to show first."""
    if obj.state != RequestState.NEEDS_INFO or Actor.LIAISON not in actor_kinds(user, obj):
        return None
    asked = [
        e for e in timeline if e.kind == "transition" and e.obj.to_state == RequestState.NEEDS_INFO
    ]
    last = asked[-1] if asked else None
    return {
        "note": last.obj.note if last else "",
        "who": last.who if last else None,
        "when": last.created if last else None,
    }


def _render_detail(
    request,
    obj: ProductionRequest,
    *,
    comment_form: CommentForm | None = None,
    notes: dict[str, str] | None = None,
    status: int = 200,
):
    user = request.user
    notes = notes or {}
    samples = list(obj.samples.select_related("template").order_by("id"))
    for sample in samples:
        sample.jobs = math.ceil(sample.events / sample.events_per_job)
    checks = sla_checks(obj)
    # Approve cannot succeed on an ineligible request (the service refuses it too):
    # the button is disabled and says which items are unmet.
    unmet = [item for c in checks if not c.ok for item in c.missing]
    actions = [
        {
            "name": a.name,
            "label": a.label,
            "note_required": a.note_required,
            "note": notes.get(a.name, ""),
            "style": "primary" if a.name in PRIMARY else "danger" if a.name in DANGEROUS else "",
            "confirm_first": a.name in CONFIRM_FIRST,
            "blocked": unmet if a.name == "approve" else [],
        }
        for a in allowed_actions(user, obj)
    ]
    operator = is_operator(user)
    fields = editable_fields(user, obj)
    links = _fix_links(user, obj, fields, operator)
    timeline = _timeline(obj)
    watchers = list(obj.watchers.all())
    context = {
        "object": obj,
        "samples": samples,
        "events_total": sum(s.events for s in samples),
        "jobs_total": sum(s.jobs for s in samples),
        "checks": checks,
        "checklist": [(c, links.get(c.key, [])) for c in checks],
        "forecast": _forecast(obj),
        "not_scheduled_yet": obj.state in UNDECIDED_STATES - {RequestState.DRAFT},
        "needs_answer": _needs_answer(user, obj, timeline),
        "promises": _promises(obj),
        "actions": actions,
        "hold": _hold(obj),
        "timeline": timeline,
        "watchers": watchers,
        "watching": any(w.pk == user.pk for w in watchers),
        "edit_mode": edit_mode(fields),
        "can_comment": can_comment(user, obj),
        "comment_form": comment_form or CommentForm(),
        "assign_form": AssignForm(initial={"assignee": obj.assignee_id}) if operator else None,
        "operator": operator,
        # Approve leads to its decision page (the effect on everyone else, then the
        # go-ahead); without one configured the button approves at once.
        "approve_at": decision_url("request", obj.number),
    }
    return render(request, "requests_app/request_detail.html", context, status=status)


@login_required
def request_detail(request, number):
    """The page a liaison links to from the ticket: everything about one request.

    A note typed into a refused action comes back in its field (kept in the session
    across the redirect that follows the refusal).
    """
    obj = visible_request(request.user, number)
    return _render_detail(request, obj, notes=take_notes(request, obj.number))


def refusal_messages(request, exc: TransitionError) -> None:
    messages.error(request, exc.detail)
    for reason in exc.reasons:
        messages.error(request, reason, extra_tags="reason")


@login_required
@require_POST
def request_action(request, number):
    """Take one of the buttons' actions; a refusal says why and keeps the note typed.

    Refused or taken, the answer is a redirect to the request's page (POST/redirect/GET:
    reloading it never posts the action again). Irreversible actions (``CONFIRM_FIRST``)
    go to their confirmation page first.
    """
    obj = visible_request(request.user, number)
    form = ActionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Unknown action.")
        return redirect(obj)
    action, note = form.cleaned_data["action"], form.cleaned_data["note"]
    if action in CONFIRM_FIRST:
        if not ACTIONS[action].actors & actor_kinds(request.user, obj):
            raise PermissionDenied(f"You may not {ACTIONS[action].label.lower()} this request.")
        stash_note(request, obj.number, action, note)
        return redirect("requests:confirm", number=obj.number, action=action)
    token = request.POST.get("effect", "")
    decide_at = decision_url("request", obj.number, note=note) if action == "approve" else None
    if (
        decide_at
        and not token
        and obj.state == RequestState.SUBMITTED
        and ACTIONS[action].actors & actor_kinds(request.user, obj)
    ):
        # An approval moves everyone else's promises, and a browser can show what it
        # would do: one posted without the effect shown (an old tab, a form of before)
        # is led to the decision page, nothing changed, its note carried. Recording "no
        # effect shown" would let a careless click through; the API and the CLI, which
        # cannot show a page, get the effect computed at the approval instead. (Whoever
        # may not approve, or a request not submitted, is refused below as before.)
        messages.info(request, "See what the approval does to everyone else first.")
        return redirect(decide_at)
    try:
        # An approval from the decision page records the effect on others it showed.
        shown = effect_shown(token, {"change": action, "request": obj.pk}) if token else None
    except EffectError as exc:
        messages.error(request, str(exc))
        return redirect(decide_at or f"{obj.get_absolute_url()}#actions-heading")
    try:
        obj = transition(obj, action, request.user, note, effect=shown)
    except TransitionError as exc:
        if exc.kind == "forbidden":
            raise PermissionDenied(exc.detail) from exc
        refusal_messages(request, exc)
        stash_note(request, obj.number, action, note)
        return redirect(f"{obj.get_absolute_url()}#actions-heading")
    messages.success(request, f"{obj.number} is now {obj.get_state_display().lower()}.")
    follow_up = getattr(settings, "OPOS_COMMITMENTS_URLS", {}).get("request")
    if action == "approve" and follow_up:
        # Right after the approval, the operator confirms what is promised to the experiment.
        messages.info(request, "Confirm or edit the commitments the tracker proposes.")
        return redirect(follow_up, number=obj.number)
    return redirect(obj)


@login_required
@require_POST
def request_comment(request, number):
    obj = visible_request(request.user, number)
    form = CommentForm(request.POST)
    if form.is_valid():
        try:
            add_comment(obj, request.user, form.cleaned_data["body"])
        except NotAllowed as exc:
            raise PermissionDenied(str(exc)) from exc
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, "Comment added.")
            return redirect(f"{obj.get_absolute_url()}#timeline")
    return _render_detail(request, obj, comment_form=form, status=400)


@login_required
@require_POST
def request_assign(request, number):
    obj = visible_request(request.user, number)
    form = AssignForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(form.errors.get("assignee", ["Invalid assignee."])))
        return redirect(obj)
    assignee = form.operators.get(form.cleaned_data["assignee"])
    try:
        assign(obj, request.user, assignee)
    except NotAllowed as exc:
        raise PermissionDenied(str(exc)) from exc
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        who = f"assigned to {assignee.get_username()}" if assignee else "unassigned"
        messages.success(request, f"{obj.number} {who}.")
    return redirect(obj)


@login_required
@require_POST
def request_watch(request, number):
    """Watch (``watch=1``) or stop watching (``watch=0``) a request one may see."""
    obj = visible_request(request.user, number)
    watch = request.POST.get("watch") == "1"
    set_watching(obj, request.user, watch)
    if watch:
        messages.success(request, f"You are watching {obj.number}: you will be emailed on changes.")
    else:
        messages.success(request, f"You no longer watch {obj.number}.")
    return redirect(obj)

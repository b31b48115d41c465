"""Applying the request state machine: checked, atomic, recorded, notified."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from common import limits
from common.decisions import Effect, at_decision
from common.errors import Refused
from experiments.models.visibility import experiment_roles, is_operator

from ..choices import RequestState
from ..extensions import approval_effect
from ..models import ProductionRequest, Transition
from ..workflow import ACTIONS, Action, Actor
from .eligibility import ticket_is_valid, unmet
from .notifications import notify_transition

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

log = logging.getLogger(__name__)


class TransitionError(Refused):
    """A refused action.

    ``kind`` says why: ``forbidden`` (the role may not: HTTP 403),
    ``conflict`` (the state or eligibility forbids it: 409) or ``invalid``
    (the input is wrong, e.g. a required note is missing: 400).
    """


def actor_kinds(user: AbstractBaseUser, request: ProductionRequest) -> set[Actor]:
    """The roles in which ``user`` may act on ``request``."""
    kinds: set[Actor] = set()
    if is_operator(user):
        kinds.add(Actor.OPERATOR)
    if experiment_roles(user).get(request.experiment_id) == "liaison":
        kinds.add(Actor.LIAISON)
    return kinds


def allowed_actions(user: AbstractBaseUser, request: ProductionRequest) -> list[Action]:
    """Actions the user may offer on the request in its current state (for buttons)."""
    kinds = actor_kinds(user, request)
    return [
        a
        for a in ACTIONS.values()
        if Actor.SYSTEM not in a.actors and a.actors & kinds and request.state in a.sources
    ]


def _check_content(request: ProductionRequest) -> list[str]:
    """What a request must have before it can be submitted."""
    reasons = []
    if not request.title.strip():
        reasons.append("title: required")
    if request.physics_group_id is None:
        reasons.append("physics_group: choose a working group")
    if request.deadline is None:
        reasons.append("deadline: required")
    if not request.samples.exists():
        reasons.append("samples: add at least one sample")
    if not request.ticket:
        reasons.append("ticket: required")
    elif not ticket_is_valid(request.ticket):
        reasons.append(f"ticket: {request.ticket!r} is not a valid service-desk reference")
    # A draft filed before the bounds (or that aged past today) is caught here too.
    if request.deadline is not None and (problem := limits.deadline_problem(request.deadline)):
        reasons.append(f"deadline: {problem}")
    return reasons


def _apply(
    request_id: int,
    action: Action,
    actor: AbstractBaseUser | None,
    note: str,
    kinds: set[Actor] | None,
    changes: dict | None = None,
    effect: Callable[[ProductionRequest], Effect] | None = None,
) -> ProductionRequest:
    with transaction.atomic():
        # The row lock makes concurrent deciders queue; the version check below
        # is the compare-and-set that also holds where row locks don't (SQLite).
        request = (
            ProductionRequest.objects.select_for_update()
            .select_related("experiment")
            .get(pk=request_id)
        )
        if kinds is not None and not (action.actors & kinds):
            raise TransitionError(
                f"You may not {action.name.replace('_', ' ')} this request.", kind="forbidden"
            )
        if request.state not in action.sources:
            last = request.transitions.order_by("-created", "-id").select_related("actor").first()
            detail = (
                f"Cannot {action.name.replace('_', ' ')}: the request is "
                f"{RequestState(request.state).label.lower()}"
            )
            if last is not None and last.actor is not None:
                detail += f" ({last.action} by {last.actor} at {last.created:%Y-%m-%d %H:%M})"
            allowed = ", ".join(sorted(RequestState(s).label.lower() for s in action.sources))
            raise TransitionError(detail + ".", [f"{action.name} needs the state: {allowed}"])
        if action.note_required and not note.strip():
            raise TransitionError(
                f"A note is required to {action.name.replace('_', ' ')}.",
                ["note: required"],
                kind="invalid",
            )
        if action.hands_in:
            reasons = _check_content(request)
            if reasons:
                raise TransitionError("The request is not ready to submit.", reasons)
        if action.needs_eligibility:
            reasons = unmet(request)
            if reasons:
                raise TransitionError(
                    "The request is not eligible under the service level agreement.", reasons
                )

        if effect is not None:
            # Checked and about to be taken: its effect on others, on the state it changes.
            changes = (changes or {}) | effect(request).as_changes()
        now = timezone.now()
        source = request.state
        fields: dict = {"updated": now, "version": request.version + 1}
        if source == RequestState.ON_HOLD and request.hold_started:
            # Leaving the hold (resumed or cancelled): its time counts against the clock.
            held = int((now - request.hold_started).total_seconds())
            fields |= {"hold_started": None, "hold_seconds": request.hold_seconds + max(held, 0)}
        if action.target is None:
            # Back to the state the request was held in.
            target = request.held_from or RequestState.APPROVED
            fields |= {"held_from": "", "hold_started": None, "hold_reason": ""}
        else:
            target = action.target
        if action.holds:
            fields |= {"held_from": source, "hold_started": now, "hold_reason": note.strip()[:500]}
        if action.hands_in and request.submitted is None:
            fields["submitted"] = now
        fields["state"] = target

        won = ProductionRequest.objects.filter(
            pk=request.pk, version=request.version, state=source
        ).update(**fields)
        if not won:
            raise TransitionError("Someone else changed the request at the same time; reload.")
        record = Transition.objects.create(
            request=request,
            action=action.name,
            from_state=source,
            to_state=target,
            actor=actor,
            note=note.strip(),
            changes=changes or {},
        )
        request.refresh_from_db()
        transaction.on_commit(lambda: notify_transition(record.pk))
    log.info("request %s: %s %s -> %s by %s", request.number, action.name, source, target, actor)
    return request


def transition(
    request: ProductionRequest | int,
    action: str,
    user: AbstractBaseUser,
    note: str = "",
    effect: Effect | None = None,
) -> ProductionRequest:
    """Take a person's ``action`` on a request (submit, approve, hold, ...).

    Checks the role, the current state, required notes, and (for approve)
    eligibility; changes the state atomically and records who, when, from,
    to and why. Of two people acting at once exactly one wins; the other
    gets a ``TransitionError`` saying what happened.

    An approval records its effect on everyone else's work (``common.decisions``):
    ``effect``, what the decision page showed the operator; without one (the API, the
    CLI, a bulk approval) it is computed at the approval by the projection the read side
    provides (``requests_app.extensions``), or the reason it could not be is recorded:
    the approval never waits on it.
    """
    spec = ACTIONS.get(action)
    if spec is None or Actor.SYSTEM in spec.actors:
        raise TransitionError(f"Unknown action {action!r}.", kind="invalid")
    request_id = request if isinstance(request, int) else request.pk
    current = ProductionRequest.objects.select_related("experiment").get(pk=request_id)
    decided = None
    if action == "approve":
        decided = _approval_effect if effect is None else (lambda _request: effect)
    return _apply(request_id, spec, user, note, actor_kinds(user, current), effect=decided)


def _approval_effect(request: ProductionRequest) -> Effect:
    """What approving ``request`` does to others, computed now (nobody was shown it)."""
    project = approval_effect()
    return at_decision(
        (lambda: project(request)) if project is not None else None,
        f"approving {request.number}",
    )


def system_transition(
    request: ProductionRequest | int,
    action: str,
    note: str = "",
    actor: AbstractBaseUser | None = None,
) -> ProductionRequest:
    """Move a request for the execution side: schedule, unschedule, start, complete."""
    spec = ACTIONS.get(action)
    if spec is None or Actor.SYSTEM not in spec.actors:
        raise TransitionError(f"{action!r} is not an execution-side action.", kind="invalid")
    request_id = request if isinstance(request, int) else request.pk
    return _apply(request_id, spec, actor, note, None)

"""The request state machine, as data.

``ACTIONS`` maps an action name (part of the API) to the states it may start
from, the state it leads to, who may take it and whether a note is required.
``requests_app.services.transition`` is the only code that applies it.

    submit        draft, needs_info            -> submitted       liaison
    request_info  submitted                    -> needs_info      operator, note
    approve       submitted                    -> approved        operator, eligibility
    reject        submitted, needs_info        -> rejected        operator, note
    hold          approved, scheduled,
                  in_production                -> on_hold         operator, note (reason)
    resume        on_hold                      -> (held from)     operator
    cancel        any but completed/terminal   -> cancelled       liaison or operator
    close         completed                    -> closed          operator

``schedule``, ``start`` and ``complete`` are taken by the execution side
(campaigns) through service functions, never by people directly.
"""

from dataclasses import dataclass
from enum import StrEnum

from .choices import OPEN_STATES
from .choices import RequestState as S


class Actor(StrEnum):
    """Who may take an action on a request."""

    LIAISON = "liaison"  # a liaison of the request's experiment
    OPERATOR = "operator"  # an operator or admin
    SYSTEM = "system"  # the execution side, through a service function


@dataclass(frozen=True)
class Action:
    """One edge of the state machine, with what taking it does besides the state change
    (the transition service reads these; it knows no action by name)."""

    name: str
    sources: frozenset[str]
    target: str | None  # None: back to the state the request was held in (its hold ends)
    actors: frozenset[Actor]
    note_required: bool = False
    label: str = ""
    # The request is handed in: its content must be complete; the first time is stamped.
    hands_in: bool = False
    # The SLA must be met (every unmet item is a reason of the refusal).
    needs_eligibility: bool = False
    # The request is held: the state it left, when and why (the note) are kept.
    holds: bool = False


def _action(name, sources, target, actors, note_required=False, label="", **effects):
    return Action(
        name,
        frozenset(sources),
        target,
        frozenset(actors),
        note_required,
        label or name.title(),
        **effects,
    )


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in [
        _action(
            "submit",
            {S.DRAFT, S.NEEDS_INFO},
            S.SUBMITTED,
            {Actor.LIAISON},
            label="Submit",
            hands_in=True,
        ),
        _action(
            "request_info",
            {S.SUBMITTED},
            S.NEEDS_INFO,
            {Actor.OPERATOR},
            True,
            "Ask for information",
        ),
        _action(
            "approve",
            {S.SUBMITTED},
            S.APPROVED,
            {Actor.OPERATOR},
            label="Approve",
            needs_eligibility=True,
        ),
        _action(
            "reject", {S.SUBMITTED, S.NEEDS_INFO}, S.REJECTED, {Actor.OPERATOR}, True, "Reject"
        ),
        _action(
            "hold",
            {S.APPROVED, S.SCHEDULED, S.IN_PRODUCTION},
            S.ON_HOLD,
            {Actor.OPERATOR},
            True,
            "Put on hold",
            holds=True,
        ),
        _action("resume", {S.ON_HOLD}, None, {Actor.OPERATOR}, label="Resume"),
        _action(
            "cancel",
            OPEN_STATES | {S.DRAFT},
            S.CANCELLED,
            {Actor.LIAISON, Actor.OPERATOR},
            label="Cancel",
        ),
        _action("close", {S.COMPLETED}, S.CLOSED, {Actor.OPERATOR}, label="Close"),
        # Taken by execution through services, never offered to people.
        _action("schedule", {S.APPROVED}, S.SCHEDULED, {Actor.SYSTEM}),
        _action("unschedule", {S.SCHEDULED}, S.APPROVED, {Actor.SYSTEM}),
        _action("start", {S.SCHEDULED}, S.IN_PRODUCTION, {Actor.SYSTEM}),
        _action("complete", {S.IN_PRODUCTION, S.SCHEDULED}, S.COMPLETED, {Actor.SYSTEM}),
    ]
}

# Actions people take in the browser and the API.
USER_ACTIONS = [name for name, a in ACTIONS.items() if Actor.SYSTEM not in a.actors]

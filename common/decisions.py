"""The effect a decision page showed, carried to the decision and recorded with it.

A what-if page (launch, priority change, scheduling, approval) shows the operator what
the decision would do to everyone else; going ahead from it records that effect with
the decision (the campaign event or the request's transition). The page signs what it
showed together with the decision it is about, so the decision records exactly that:
not an effect edited in the browser, nor one shown for another decision, nor one so old
that the state it was projected on has moved on.
"""

from __future__ import annotations

from typing import Any

from django.core import signing

SALT = "opos.decisions.effect-shown"
# An effect older than this was projected on a state that has moved on: ask again.
MAX_AGE_S = 3600
MAX_LINES = 200


class EffectError(ValueError):
    """The effect sent with a decision cannot be recorded: the message says why."""


def sign_effect(decision: dict[str, Any], lines: list[str]) -> str:
    """What a page puts in its go-ahead form: the decision and the effect it showed."""
    return signing.dumps({"decision": decision, "lines": lines[:MAX_LINES]}, salt=SALT)


def effect_shown(token: str, decision: dict[str, Any]) -> list[str]:
    """The effect shown before ``decision``, checked: signed by this server, for this very
    decision, and recent (``MAX_AGE_S``)."""
    try:
        shown = signing.loads(token, salt=SALT, max_age=MAX_AGE_S)
    except signing.SignatureExpired as exc:
        raise EffectError(
            "effect: the effect shown is over an hour old; look at it again before deciding"
        ) from exc
    except signing.BadSignature as exc:
        raise EffectError("effect: not an effect this tracker showed") from exc
    if shown.get("decision") != decision:
        raise EffectError("effect: it was shown for another decision; look at this one first")
    return [str(line) for line in shown.get("lines", [])]

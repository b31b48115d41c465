"""The effect a decision has on everyone else, recorded with the decision.

Four decisions move other experiments' promises: approving a request, launching a
campaign, scheduling requests into one and changing a campaign's priority. Each records,
with the decision (the request's transition or the campaign event), what it was known to
do to everyone else, in one of three ways:

* ``effect_shown``: the lines the decision page showed the operator before the go-ahead.
  The page signs what it showed together with the decision it is about, so the decision
  records exactly that: not an effect edited in the browser, nor one shown for another
  decision, nor one so old that the state it was projected on has moved on.
* ``effect_computed``: nobody was shown anything (the REST API, the CLI, a bulk action),
  so the service computed the effect at the decision, with the same projection, just
  before taking it. It is what the decision did, not what the decider saw.
* ``effect_not_computed``: the projection failed (or no app provides it); the reason.
  A what-if is advice: its failure never blocks the decision, it is only said.

The projection lives above the services that take the decisions (the read side), so the
services receive it as a function handed down when the apps load
(``requests_app.extensions``, ``campaigns.extensions``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils.http import urlencode

log = logging.getLogger(__name__)

SALT = "opos.decisions.effect-shown"
# An effect older than this was projected on a state that has moved on: ask again.
MAX_AGE_S = 3600
MAX_LINES = 200

SHOWN = "effect_shown"
COMPUTED = "effect_computed"
NOT_COMPUTED = "effect_not_computed"
KEYS = (SHOWN, COMPUTED, NOT_COMPUTED)


class EffectError(ValueError):
    """The effect sent with a decision cannot be recorded: the message says why."""


@dataclass(frozen=True)
class Effect:
    """What a decision records of its effect on others: ``how`` is one of ``KEYS``;
    ``lines`` the effect in words, ``reason`` why there are none (``NOT_COMPUTED``)."""

    how: str
    lines: tuple[str, ...] = ()
    reason: str = ""

    def as_changes(self) -> dict[str, Any]:
        """The entry the decision's record (``changes``) keeps."""
        if self.how == NOT_COMPUTED:
            return {NOT_COMPUTED: self.reason}
        return {self.how: list(self.lines)}


def decision_url(kind: str, *args: Any, **query: Any) -> str | None:
    """The decision page of a request's approval (``kind`` "request") or of a campaign's
    decisions ("campaign"), with ``query``; None when the settings name none
    (``OPOS_DECISION_URLS``: URL names, so intake and execution do not import the read
    side that draws the pages)."""
    name = getattr(settings, "OPOS_DECISION_URLS", {}).get(kind)
    if not name:
        return None
    url = reverse(name, args=args)
    query = {k: v for k, v in query.items() if v not in ("", None, [])}
    return f"{url}?{urlencode(query, doseq=True)}" if query else url


def shown(lines: list[str]) -> Effect:
    return Effect(SHOWN, tuple(str(line) for line in lines[:MAX_LINES]))


def sign_effect(decision: dict[str, Any], lines: list[str], failure: str = "") -> str:
    """What a page puts in its go-ahead form: the decision and the effect it showed (or,
    when the page could not compute one, why: the decision goes ahead all the same)."""
    body: dict[str, Any] = {"decision": decision, "lines": lines[:MAX_LINES]}
    if failure:
        body["failure"] = failure
    return signing.dumps(body, salt=SALT)


def effect_shown(token: str, decision: dict[str, Any]) -> Effect:
    """The effect shown before ``decision``, checked: signed by this server, for this very
    decision, and recent (``MAX_AGE_S``)."""
    try:
        body = signing.loads(token, salt=SALT, max_age=MAX_AGE_S)
    except signing.SignatureExpired as exc:
        raise EffectError(
            "effect: the effect shown is over an hour old; look at it again before deciding"
        ) from exc
    except signing.BadSignature as exc:
        raise EffectError("effect: not an effect this tracker showed") from exc
    if body.get("decision") != decision:
        raise EffectError("effect: it was shown for another decision; look at this one first")
    if body.get("failure"):
        reason = f"the decision page could not compute it: {body['failure']}"
        return Effect(NOT_COMPUTED, reason=reason)
    return shown([str(line) for line in body.get("lines", [])])


def at_decision(compute: Callable[[], list[str]] | None, about: str) -> Effect:
    """The effect computed now, as the decision is taken (``COMPUTED``), or why not.

    Run inside the decision's transaction, after its checks and before its writes, so it
    is projected on the state the decision changes. A savepoint keeps a failing query of
    the projection from aborting the decision's transaction; any failure is logged and
    recorded, never raised: a what-if must not block a decision.
    """
    if compute is None:
        return Effect(NOT_COMPUTED, reason="no projection is available on this server")
    try:
        with transaction.atomic():
            lines = compute()
    except Exception as exc:  # advice only: the decision goes ahead
        log.exception("the effect of %s could not be computed", about)
        reason = f"the projection failed ({type(exc).__name__}: {exc})"
        return Effect(NOT_COMPUTED, reason=reason[:500])
    return Effect(COMPUTED, tuple(str(line) for line in lines[:MAX_LINES]))

"""What the read side adds to execution's decisions, without execution importing it.

A launch, a priority change and a scheduling record their effect on everyone else's work
(``common.decisions``). When nobody was shown it first (the REST API, the CLI), the
service computes it at the decision with the read side's what-if (the scheduler's
projection plus the commitments it would move), which ``monitoring.apps`` hands down here
when the apps load: the dependency points down, as the layers require.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from common.decisions import Effect, at_decision

# ``effect(decision) -> lines``; ``decision`` as the decision page signs it:
# {"change": "launch" | "priority" | "schedule", "campaign": id, "priority": name,
#  "requests": [ids]}.
DecisionEffect = Callable[[dict[str, Any]], list[str]]

_decision_effect: list[DecisionEffect] = []


def provide_decision_effect(effect: DecisionEffect) -> None:
    """Use ``effect`` to compute a campaign decision's effect (the last one given)."""
    _decision_effect[:] = [effect]


def decision_effect() -> DecisionEffect | None:
    """The projection the read side provided, or None when no app did."""
    return _decision_effect[0] if _decision_effect else None


def effect_at_decision(decision: dict[str, Any]) -> Effect:
    """The effect of ``decision`` computed now, as it is taken (nobody was shown it), or
    the reason it could not be: never raised (``common.decisions.at_decision``)."""
    project = decision_effect()
    return at_decision(
        (lambda: project(decision)) if project is not None else None,
        f"{decision['change']} of campaign {decision['campaign']}",
    )

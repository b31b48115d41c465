"""The campaign state machine, as data.

``CAMPAIGN_ACTIONS`` maps an action name (part of the API) to the states it
may start from and the state it leads to. ``campaigns.services.campaign_action``
is the only code that applies it; only operators take these actions.

    launch    planned                  -> active      operator
    pause     active                   -> paused      operator
    resume    paused                   -> active      operator
    cancel    planned, active, paused  -> cancelled   operator; execution cancels
                                                      what is queued or running
    complete  active                   -> completed   execution (every job done)
"""

from dataclasses import dataclass

from .choices import CampaignEventKind
from .choices import CampaignState as S


@dataclass(frozen=True)
class CampaignAction:
    name: str
    sources: frozenset[str]
    target: str
    event: str
    label: str
    by_operator: bool = True


CAMPAIGN_ACTIONS: dict[str, CampaignAction] = {
    a.name: a
    for a in [
        CampaignAction(
            "launch", frozenset({S.PLANNED}), S.ACTIVE, CampaignEventKind.LAUNCHED, "Launch"
        ),
        CampaignAction("pause", frozenset({S.ACTIVE}), S.PAUSED, CampaignEventKind.PAUSED, "Pause"),
        CampaignAction(
            "resume", frozenset({S.PAUSED}), S.ACTIVE, CampaignEventKind.RESUMED, "Resume"
        ),
        CampaignAction(
            "cancel",
            frozenset({S.PLANNED, S.ACTIVE, S.PAUSED}),
            S.CANCELLED,
            CampaignEventKind.CANCELLED,
            "Cancel",
        ),
        CampaignAction(
            "complete",
            frozenset({S.ACTIVE}),
            S.COMPLETED,
            CampaignEventKind.COMPLETED,
            "Complete",
            by_operator=False,
        ),
    ]
}

# Actions people take in the browser and the API.
OPERATOR_ACTIONS = [name for name, a in CAMPAIGN_ACTIONS.items() if a.by_operator]


def available_actions(state: str) -> list[CampaignAction]:
    """Operator actions that the campaign's current state allows, for the page's buttons."""
    return [CAMPAIGN_ACTIONS[n] for n in OPERATOR_ACTIONS if state in CAMPAIGN_ACTIONS[n].sources]

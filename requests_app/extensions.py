"""What the apps above intake add to its pages, without intake importing them.

Intake is a lower layer than execution and the read side (``pyproject.toml``,
``[tool.importlinter]``), yet the request page shows a forecast of when the request would
finish and its commitments. The read side hands both to intake when the apps load
(``monitoring.apps``); execution hands the operator's home its blocked campaigns
(``campaigns.apps``). An approval records its effect on everyone else's work
(``common.decisions``); when nobody was shown it first (the API, the CLI, a bulk
approval), the read side's projection computes it at the decision, handed down here
too. The dependency points down, as the layers require, and is visible where it is made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RequestForecaster = Callable[[Any], Any]
HomeSection = Callable[[Any], dict | None]
ApprovalEffect = Callable[[Any], list[str]]

_request_forecaster: list[RequestForecaster] = []
_request_promises: list[RequestForecaster] = []
_home_sections: list[HomeSection] = []
_approval_effect: list[ApprovalEffect] = []


def provide_request_forecast(forecaster: RequestForecaster) -> None:
    """Use ``forecaster(request) -> Forecast`` for the request page (the last one given)."""
    _request_forecaster[:] = [forecaster]


def request_forecaster() -> RequestForecaster | None:
    """The forecaster the read side provided, or None when no app did (intake alone)."""
    return _request_forecaster[0] if _request_forecaster else None


def provide_request_promises(promises: RequestForecaster) -> None:
    """Use ``promises(request) -> dict`` (the read side's commitments and service-desk
    clock) on the request page (the last one given)."""
    _request_promises[:] = [promises]


def request_promises() -> RequestForecaster | None:
    """The read side's commitments for the request page, or None when no app gave them."""
    return _request_promises[0] if _request_promises else None


def add_home_section(section: HomeSection) -> None:
    """Show ``section(user) -> {"title", ...} | None`` on the home page, after intake's own
    lists of what waits for the user (once, however often the apps load)."""
    if section not in _home_sections:
        _home_sections.append(section)


def home_sections() -> list[HomeSection]:
    """What the apps above intake add to the home page, in the order they were added."""
    return list(_home_sections)


def provide_approval_effect(effect: ApprovalEffect) -> None:
    """Use ``effect(request) -> lines`` for what approving a submitted request does to
    everyone else, computed at the approval when no page showed it (the last one given)."""
    _approval_effect[:] = [effect]


def approval_effect() -> ApprovalEffect | None:
    """The projection of an approval the read side provided, or None (intake alone)."""
    return _approval_effect[0] if _approval_effect else None

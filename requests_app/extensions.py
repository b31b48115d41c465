"""What the apps above intake add to its pages, without intake importing them.

Intake is a lower layer than execution (``pyproject.toml``, ``[tool.importlinter]``), yet
the request page shows execution's forecast of when the request would finish. Execution
hands its forecaster to intake when the apps load (``campaigns.apps``), so the dependency
points down, as the layers require, and is visible where it is made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RequestForecaster = Callable[[Any], Any]

_request_forecaster: list[RequestForecaster] = []


def provide_request_forecast(forecaster: RequestForecaster) -> None:
    """Use ``forecaster(request) -> Forecast`` for the request page (the last one given)."""
    _request_forecaster[:] = [forecaster]


def request_forecaster() -> RequestForecaster | None:
    """The forecaster execution provided, or None when no app did (intake alone)."""
    return _request_forecaster[0] if _request_forecaster else None

"""The connector interface: what the sync needs from a service desk, whatever its make.

A connector reads the tickets assigned to the production group, reads one
ticket, and posts a work note (optionally moving the ticket's state). The
ServiceNow implementation lives in ``servicedesk.servicenow``; another desk
would be one more module behind the same three methods.

Errors are split by what the caller should do about them:
``TransientServiceDeskError`` (outage, time-out, 5xx, throttling) is worth
retrying later; any other ``ServiceDeskError`` (a refusal: bad credentials,
unknown record, invalid value) will fail again the same way until a person
changes something.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .conf import ServiceDeskConfig, load_config


class ServiceDeskError(Exception):
    """The service desk refused or could not answer; retrying as is will not help."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class TransientServiceDeskError(ServiceDeskError):
    """The service desk is down, slow or throttling: retry later with backoff."""


class ServiceDeskAuthError(ServiceDeskError):
    """The desk rejected our credentials or our rights (401/403): an operator must fix settings."""


@dataclass(frozen=True)
class Ticket:
    """A service-desk ticket as the sync sees it, independent of the desk's JSON.

    ``experiment`` and ``group`` hold every value the desk gave for the
    mapped field (stored value and display value), so either may be mapped.
    """

    number: str
    sys_id: str
    table: str
    short_description: str = ""
    description: str = ""
    requester_email: str = ""
    experiment: tuple[str, ...] = ()
    group: tuple[str, ...] = ()
    priority: str = ""
    assignment_group: tuple[str, ...] = ()
    active: bool = True
    due: dt.datetime | None = None
    updated: dt.datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


class ServiceDeskConnector(ABC):
    """What the sync needs from a service desk."""

    #: Shown on the health page and in logs.
    name: str = "service desk"

    @abstractmethod
    def assigned_tickets(self, since: dt.datetime | None = None) -> Iterator[Ticket]:
        """Active tickets assigned to the production group, updated at or after ``since``.

        Oldest update first, so a caller can keep the newest ``updated`` as
        its watermark even if iteration stops half-way.
        """

    @abstractmethod
    def get_ticket(self, number: str = "", sys_id: str = "") -> Ticket | None:
        """One ticket by number or sys_id (None when the desk has no such ticket)."""

    @abstractmethod
    def post_update(self, sys_id: str, work_note: str, state: str = "") -> None:
        """Add a work note to the ticket and, if ``state`` is given, set its state."""

    def close(self) -> None:  # noqa: B027 - optional hook, most connectors hold nothing
        """Release connections (called when a sync run ends)."""

    def __enter__(self) -> ServiceDeskConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def get_connector(config: ServiceDeskConfig | None = None) -> ServiceDeskConnector | None:
    """The configured connector, or None when the connector is disabled (no instance URL)."""
    config = config or load_config()
    if not config.enabled:
        return None
    from .servicenow import ServiceNowConnector

    return ServiceNowConnector(config)

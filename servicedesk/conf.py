"""The connector's configuration, read from Django settings (themselves from the environment).

Settings hold plain strings so that ``opos/settings.py`` stays a list of
``env_str`` lines; this module turns them into typed values once, and says
clearly what is wrong when a value cannot be understood. Tests override the
settings with either the string form or a ready dict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from requests_app.choices import RequestState

# Ticket states per request state, for the two tables the connector is meant
# for. Values are ServiceNow's out-of-the-box choice values:
#   sc_req_item.state: 1 Open, 2 Work in Progress, -5 Pending, 3 Closed Complete,
#                      4 Closed Incomplete, 7 Closed Skipped
#   incident.state:    1 New, 2 In Progress, 3 On Hold, 6 Resolved, 7 Closed, 8 Canceled
# Request states not listed leave the ticket's state alone (only a work note is posted).
DEFAULT_STATE_MAPS: dict[str, dict[str, str]] = {
    "sc_req_item": {
        RequestState.APPROVED: "2",
        RequestState.SCHEDULED: "2",
        RequestState.IN_PRODUCTION: "2",
        RequestState.ON_HOLD: "-5",
        RequestState.COMPLETED: "3",
        RequestState.CLOSED: "3",
        RequestState.REJECTED: "4",
        RequestState.CANCELLED: "4",
    },
    "incident": {
        RequestState.APPROVED: "2",
        RequestState.SCHEDULED: "2",
        RequestState.IN_PRODUCTION: "2",
        RequestState.ON_HOLD: "3",
        RequestState.COMPLETED: "6",
        RequestState.CLOSED: "7",
        RequestState.REJECTED: "8",
        RequestState.CANCELLED: "8",
    },
}

# Who asked, on each table: dot-walked to the user's email in sysparm_fields.
DEFAULT_REQUESTER_EMAIL_FIELDS = {
    "sc_req_item": "requested_for.email",
    "incident": "caller_id.email",
}

TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,79}$")
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,79}(\.[a-z][a-z0-9_]{0,79}){0,3}$")


def parse_pairs(name: str, value: str | dict | None) -> dict[str, str]:
    """``"a=1, b=2"`` (or a dict) -> ``{"a": "1", "b": "2"}``; an error names the setting."""
    if not value:
        return {}
    if isinstance(value, dict):
        return {str(k).strip(): str(v).strip() for k, v in value.items()}
    pairs: dict[str, str] = {}
    for item in str(value).split(","):
        if not item.strip():
            continue
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ImproperlyConfigured(f"{name}: {item.strip()!r} is not of the form key=value")
        pairs[key.strip()] = val.strip()
    return pairs


@dataclass(frozen=True)
class ServiceDeskConfig:
    """Everything the connector needs, validated; ``enabled`` is False without an instance URL."""

    instance_url: str = ""
    user: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    table: str = "sc_req_item"
    assignment_group: str = ""
    timeout: float = 20.0
    requester_email_field: str = "requested_for.email"
    experiment_field: str = "u_experiment"
    experiment_map: dict[str, str] = field(default_factory=dict)
    group_field: str = ""
    default_groups: dict[str, str] = field(default_factory=dict)
    default_liaisons: dict[str, str] = field(default_factory=dict)
    default_deadline_days: int = 30
    state_map: dict[str, str] = field(default_factory=dict)
    webhook_secret: str = field(default="", repr=False)
    push_max_attempts: int = 48
    push_backoff_base: int = 30
    push_backoff_max: int = 3600
    page_size: int = 100

    @property
    def enabled(self) -> bool:
        return bool(self.instance_url)

    def missing(self) -> list[str]:
        """What an operator must still set for the connector to work (for the health page)."""
        out = []
        if not self.instance_url:
            out.append("SERVICENOW_INSTANCE_URL")
        if not self.token and not (self.user and self.password):
            out.append("SERVICENOW_USER and SERVICENOW_PASSWORD (or SERVICENOW_TOKEN)")
        if not self.assignment_group:
            out.append("SERVICENOW_ASSIGNMENT_GROUP")
        if not self.webhook_secret:
            out.append("SERVICEDESK_WEBHOOK_SECRET (only for the webhook)")
        return out


def _setting(name: str, default=""):
    return getattr(settings, name, default)


def load_config() -> ServiceDeskConfig:
    """Read and check the ``SERVICENOW_*`` and ``SERVICEDESK_*`` settings.

    Read at each use rather than at import, so ``override_settings`` in tests
    and a changed environment after a restart both take effect.
    """
    table = str(_setting("SERVICENOW_TABLE", "sc_req_item") or "sc_req_item").strip()
    if not TABLE_NAME.fullmatch(table):
        raise ImproperlyConfigured(f"SERVICENOW_TABLE={table!r} is not a table name")
    email_field = str(
        _setting("SERVICENOW_REQUESTER_EMAIL_FIELD", "")
        or DEFAULT_REQUESTER_EMAIL_FIELDS.get(table, "opened_by.email")
    ).strip()
    experiment_field = str(_setting("SERVICENOW_EXPERIMENT_FIELD", "u_experiment")).strip()
    group_field = str(_setting("SERVICENOW_GROUP_FIELD", "")).strip()
    for name, value in [
        ("SERVICENOW_REQUESTER_EMAIL_FIELD", email_field),
        ("SERVICENOW_EXPERIMENT_FIELD", experiment_field),
        ("SERVICENOW_GROUP_FIELD", group_field),
    ]:
        # They end up in sysparm_fields: only plain (dot-walked) field names.
        if value and not FIELD_NAME.fullmatch(value):
            raise ImproperlyConfigured(f"{name}={value!r} is not a ServiceNow field name")
    state_map = dict(DEFAULT_STATE_MAPS.get(table, {}))
    overrides = parse_pairs("SERVICENOW_STATE_MAP", _setting("SERVICENOW_STATE_MAP"))
    unknown = sorted(set(overrides) - set(RequestState.values))
    if unknown:
        raise ImproperlyConfigured(
            f"SERVICENOW_STATE_MAP: {', '.join(unknown)} are not request states"
            f" (use {', '.join(RequestState.values)})"
        )
    state_map.update(overrides)
    # An empty value unmaps a state: "on_hold=" posts the note and leaves the ticket's state.
    state_map = {k: v for k, v in state_map.items() if v}
    return ServiceDeskConfig(
        instance_url=str(_setting("SERVICENOW_INSTANCE_URL", "")).strip().rstrip("/"),
        user=str(_setting("SERVICENOW_USER", "")),
        password=str(_setting("SERVICENOW_PASSWORD", "")),
        token=str(_setting("SERVICENOW_TOKEN", "")),
        table=table,
        assignment_group=str(_setting("SERVICENOW_ASSIGNMENT_GROUP", "")).strip(),
        timeout=float(_setting("SERVICENOW_TIMEOUT", 20) or 20),
        requester_email_field=email_field,
        experiment_field=experiment_field,
        experiment_map={
            k.lower(): v
            for k, v in parse_pairs(
                "SERVICENOW_EXPERIMENT_MAP", _setting("SERVICENOW_EXPERIMENT_MAP")
            ).items()
        },
        group_field=group_field,
        default_groups=parse_pairs(
            "SERVICEDESK_DEFAULT_GROUPS", _setting("SERVICEDESK_DEFAULT_GROUPS")
        ),
        default_liaisons=parse_pairs(
            "SERVICEDESK_DEFAULT_LIAISONS", _setting("SERVICEDESK_DEFAULT_LIAISONS")
        ),
        default_deadline_days=int(_setting("SERVICEDESK_DEFAULT_DEADLINE_DAYS", 30) or 30),
        state_map=state_map,
        webhook_secret=str(_setting("SERVICEDESK_WEBHOOK_SECRET", "")),
        push_max_attempts=int(_setting("SERVICEDESK_PUSH_MAX_ATTEMPTS", 48) or 48),
        push_backoff_base=int(_setting("SERVICEDESK_PUSH_BACKOFF_BASE", 30) or 30),
        push_backoff_max=int(_setting("SERVICEDESK_PUSH_BACKOFF_MAX", 3600) or 3600),
        page_size=int(_setting("SERVICENOW_PAGE_SIZE", 100) or 100),
    )

"""ServiceNow connector over its REST Table API.

The subset used, with the shapes from ServiceNow's Table API reference
("Table API", api-reference/rest-apis/c_TableAPI; the Geneva pages
r_TableAPI-GET and r_TableAPI-PUT, the Utah "Table API" page, and KB0534905
"Table API FAQs"), and the developer blog post "Dot-walking in the REST
Table API":

``GET /api/now/table/{tableName}``
    Query parameters ``sysparm_query`` (an encoded query: conditions joined by
    ``^``, ``ORDERBY<field>`` to sort), ``sysparm_fields`` (comma-separated,
    dot-walking allowed: ``requested_for.email``), ``sysparm_limit`` and
    ``sysparm_offset`` (paging), ``sysparm_display_value`` (``true``,
    ``false`` or ``all``: with ``all`` every field is
    ``{"display_value": ..., "value": ...}``) and
    ``sysparm_exclude_reference_link`` (drop the ``link`` of reference
    fields). Answer: ``200 {"result": [record, ...]}``.
``GET /api/now/table/{tableName}/{sys_id}``
    Answer: ``200 {"result": record}``, ``404`` when there is no such record.
``PATCH /api/now/table/{tableName}/{sys_id}``
    JSON body with the fields to change, here ``work_notes`` (a journal
    field: the text is appended as a new work note) and ``state``. Answer:
    ``200 {"result": record}``.
Errors
    ``{"error": {"message": ..., "detail": ...}, "status": "failure"}`` with
    400 (bad request), 401 (not authenticated), 403 (ACL), 404, and 5xx or
    429 when the instance is in trouble or throttling.
Authentication
    HTTP basic (a user with the ``rest_api_explorer``/``itil`` rights on the
    table) or an OAuth bearer token (``Authorization: Bearer ...``).

Values are read with ``sysparm_display_value=all`` so that a mapping may use
either a choice's stored value or its label; date-times are the stored
values, which ServiceNow keeps in UTC as ``YYYY-MM-DD HH:MM:SS``.

What was exercised against a real instance: nothing (none can run here);
tests run against ``tests/servicedesk/fake_servicenow.py``, a local server
built from the shapes above. See ``docs/servicedesk.md``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx

from .conf import ServiceDeskConfig
from .connector import (
    ServiceDeskAuthError,
    ServiceDeskConnector,
    ServiceDeskError,
    Ticket,
    TransientServiceDeskError,
)

log = logging.getLogger(__name__)

SYS_ID = re.compile(r"^[0-9a-f]{32}$")
# Ticket numbers and group names go into an encoded query, where ^ separates
# conditions: refuse anything that could smuggle in another condition.
SAFE_VALUE = re.compile(r"^[^\^\n\r]{1,200}$")
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
BASE_FIELDS = (
    "sys_id",
    "number",
    "short_description",
    "description",
    "priority",
    "state",
    "active",
    "assignment_group",
    "due_date",
    "sys_updated_on",
)


def parse_datetime(value: str) -> dt.datetime | None:
    """ServiceNow's stored date-time (``2026-11-30 09:15:02``, UTC) as an aware datetime."""
    value = (value or "").strip()
    if not value:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(value, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    return None


def query_datetime(moment: dt.datetime) -> str:
    """A date-time condition value as the desk's condition builder writes it."""
    utc = moment.astimezone(dt.UTC)
    return f"javascript:gs.dateGenerate('{utc:%Y-%m-%d}','{utc:%H:%M:%S}')"


def _values(field: Any) -> tuple[str, ...]:
    """Every distinct non-empty value of a field: stored value first, then display value."""
    items = [field.get("value"), field.get("display_value")] if isinstance(field, dict) else [field]
    out: list[str] = []
    for item in items:
        text = "" if item is None else str(item).strip()
        if text and text not in out:
            out.append(text)
    return tuple(out)


def _value(field: Any) -> str:
    """The stored value of a field (``value`` of an ``all`` pair)."""
    if isinstance(field, dict):
        return str(field.get("value") or "")
    return "" if field is None else str(field)


def _display(field: Any) -> str:
    """The display value of a field, falling back to the stored one."""
    if isinstance(field, dict):
        return str(field.get("display_value") or field.get("value") or "")
    return "" if field is None else str(field)


class ServiceNowConnector(ServiceDeskConnector):
    """Reads tickets from one table and posts work notes to them, over the Table API."""

    name = "ServiceNow"

    def __init__(self, config: ServiceDeskConfig, transport: httpx.BaseTransport | None = None):
        self.config = config
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": "opos-tracker",
        }
        auth: httpx.Auth | None = None
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        elif config.user:
            auth = httpx.BasicAuth(config.user, config.password)
        self.client = httpx.Client(
            base_url=config.instance_url,
            headers=headers,
            auth=auth,
            timeout=httpx.Timeout(config.timeout, connect=min(config.timeout, 10.0)),
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self.client.close()

    # --- HTTP -------------------------------------------------------------------

    @property
    def table_path(self) -> str:
        return f"/api/now/table/{self.config.table}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; the ``result`` of the answer, or a classified error."""
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientServiceDeskError(f"{self.name} timed out: {exc}") from exc
        except httpx.TransportError as exc:
            raise TransientServiceDeskError(f"{self.name} unreachable: {exc}") from exc
        status = response.status_code
        if status >= 400:
            message = self._error_message(response)
            if status in TRANSIENT_STATUS or status >= 500:
                raise TransientServiceDeskError(message, status)
            if status in (401, 403):
                raise ServiceDeskAuthError(message, status)
            raise ServiceDeskError(message, status)
        try:
            body = response.json()
        except ValueError as exc:
            # A hibernating or redirected instance answers 200 with an HTML page.
            kind = response.headers.get("content-type", "no content type")
            raise TransientServiceDeskError(
                f"{self.name} answered {status} without JSON ({kind})", status
            ) from exc
        if not isinstance(body, dict) or "result" not in body:
            raise ServiceDeskError(f"{self.name} answered {status} without a result", status)
        return body["result"]

    def _error_message(self, response: httpx.Response) -> str:
        prefix = f"{self.name} {response.request.method} {response.request.url.path}"
        try:
            error = response.json().get("error") or {}
            text = " - ".join(p for p in (error.get("message"), error.get("detail")) if p)
        except (ValueError, AttributeError):
            text = response.text[:200].strip()
        return f"{prefix}: HTTP {response.status_code}" + (f": {text}" if text else "")

    # --- Reading ----------------------------------------------------------------

    def _fields(self) -> str:
        extra = [
            self.config.requester_email_field,
            self.config.experiment_field,
            self.config.group_field,
        ]
        return ",".join(dict.fromkeys([*BASE_FIELDS, *[f for f in extra if f]]))

    def _params(self, query: str, limit: int, offset: int = 0) -> dict[str, str]:
        return {
            "sysparm_query": query,
            "sysparm_fields": self._fields(),
            "sysparm_display_value": "all",
            "sysparm_exclude_reference_link": "true",
            "sysparm_limit": str(limit),
            "sysparm_offset": str(offset),
        }

    def _group_condition(self) -> str:
        group = self.config.assignment_group
        if not SAFE_VALUE.fullmatch(group):
            raise ServiceDeskError(f"SERVICENOW_ASSIGNMENT_GROUP={group!r} cannot be queried")
        # A sys_id names the group exactly; a name is dot-walked.
        if SYS_ID.fullmatch(group):
            return f"assignment_group={group}"
        return f"assignment_group.name={group}"

    def assigned_tickets(self, since: dt.datetime | None = None) -> Iterator[Ticket]:
        query = f"{self._group_condition()}^active=true"
        if since is not None:
            query += f"^sys_updated_on>={query_datetime(since)}"
        query += "^ORDERBYsys_updated_on"
        offset, size = 0, self.config.page_size
        while True:
            page = self._call("GET", self.table_path, params=self._params(query, size, offset))
            if not isinstance(page, list):
                raise ServiceDeskError(f"{self.name} answered a list query with a single record")
            for record in page:
                yield self.to_ticket(record)
            if len(page) < size:
                return
            offset += size

    def get_ticket(self, number: str = "", sys_id: str = "") -> Ticket | None:
        if sys_id:
            if not SYS_ID.fullmatch(sys_id):
                raise ServiceDeskError(f"{sys_id!r} is not a sys_id")
            params = self._params("", 1)
            for key in ("sysparm_query", "sysparm_limit", "sysparm_offset"):
                params.pop(key)
            try:
                record = self._call("GET", f"{self.table_path}/{sys_id}", params=params)
            except ServiceDeskError as exc:
                if exc.status == 404:
                    return None
                raise
            return self.to_ticket(record)
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", number or ""):
            raise ServiceDeskError(f"{number!r} is not a ticket number")
        page = self._call("GET", self.table_path, params=self._params(f"number={number}", 1))
        return self.to_ticket(page[0]) if page else None

    def to_ticket(self, record: dict[str, Any]) -> Ticket:
        """A Table API record (``display_value=all`` or plain) as a ``Ticket``."""
        cfg = self.config
        due = parse_datetime(_value(record.get("due_date")))
        return Ticket(
            number=_value(record.get("number")),
            sys_id=_value(record.get("sys_id")),
            table=cfg.table,
            short_description=_display(record.get("short_description")),
            description=_display(record.get("description")),
            requester_email=_value(record.get(cfg.requester_email_field)).strip(),
            experiment=_values(record.get(cfg.experiment_field)) if cfg.experiment_field else (),
            group=_values(record.get(cfg.group_field)) if cfg.group_field else (),
            priority=_value(record.get("priority")),
            assignment_group=_values(record.get("assignment_group")),
            active=_value(record.get("active")).lower() not in {"false", "0"},
            due=due,
            updated=parse_datetime(_value(record.get("sys_updated_on"))),
            raw=record,
        )

    # --- Writing ----------------------------------------------------------------

    def post_update(self, sys_id: str, work_note: str, state: str = "") -> None:
        if not SYS_ID.fullmatch(sys_id or ""):
            raise ServiceDeskError(f"{sys_id!r} is not a sys_id")
        body: dict[str, str] = {"work_notes": work_note}
        if state:
            body["state"] = state
        self._call(
            "PATCH",
            f"{self.table_path}/{sys_id}",
            params={
                "sysparm_fields": "sys_id,number,state",
                "sysparm_exclude_reference_link": "true",
            },
            json=body,
        )
        log.info("posted to %s %s (state %s)", self.config.table, sys_id, state or "unchanged")

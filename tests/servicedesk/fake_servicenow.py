"""A local stand-in for a ServiceNow instance: the subset of the REST Table API we use.

Shapes follow ServiceNow's Table API reference (see ``servicedesk/servicenow.py``):

- ``GET /api/now/table/{table}`` with ``sysparm_query`` (conditions joined by
  ``^``; operators ``=``, ``!=``, ``>=``, ``<=``, ``>``, ``<``; dot-walked
  fields such as ``assignment_group.name``; ``javascript:gs.dateGenerate(d, t)``
  values; ``ORDERBY``/``ORDERBYDESC``), ``sysparm_fields`` (dot-walking
  allowed), ``sysparm_limit``/``sysparm_offset``, ``sysparm_display_value``
  (``false``, ``true``, ``all``) and ``sysparm_exclude_reference_link``;
  answers ``{"result": [...]}`` with ``X-Total-Count``.
- ``GET /api/now/table/{table}/{sys_id}`` -> ``{"result": {...}}`` or 404.
- ``PATCH /api/now/table/{table}/{sys_id}``: ``work_notes`` is a journal
  field (each value is appended as a new entry), other fields are set.
- Errors as ``{"error": {"message": ..., "detail": ...}, "status": "failure"}``;
  basic auth or a bearer token, else 401.

Test hooks: ``fail_status`` makes every call answer that status (an
outage behind a proxy), ``down()``/``up()`` close and reopen the port (an
outage where nothing answers), ``calls`` records every request.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

REFERENCES = {
    "assignment_group": "sys_user_group",
    "requested_for": "sys_user",
    "caller_id": "sys_user",
    "opened_by": "sys_user",
}
CHOICES = {
    "state": {
        "1": "Open",
        "2": "Work in Progress",
        "-5": "Pending",
        "3": "Closed Complete",
        "4": "Closed Incomplete",
        "7": "Closed Skipped",
    },
    "priority": {
        "1": "1 - Critical",
        "2": "2 - High",
        "3": "3 - Moderate",
        "4": "4 - Low",
        "5": "5 - Planning",
    },
}
OPERATORS = (">=", "<=", "!=", "=", ">", "<")
DATE_GENERATE = re.compile(r"^javascript:gs\.dateGenerate\('([^']*)','([^']*)'\)$")


def now_string() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def new_sys_id() -> str:
    return uuid.uuid4().hex


class FakeServiceNow:
    """An in-process HTTP server with a few tables, on 127.0.0.1 and a random port."""

    def __init__(self, user: str = "opos", password: str = "secret", token: str = "tok-123"):  # noqa: S107 - a test double's fixed credentials
        self.user, self.password, self.token = user, password, token
        self.tables: dict[str, dict[str, dict[str, Any]]] = {
            "sc_req_item": {},
            "incident": {},
            "sys_user": {},
            "sys_user_group": {},
        }
        self.labels: dict[str, dict[str, str]] = {}  # extra choice labels, per field
        self.calls: list[dict[str, Any]] = []
        self.fail_status: int | None = None
        self.lock = threading.Lock()
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # --- Life cycle -------------------------------------------------------------

    def up(self) -> FakeServiceNow:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        return self

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- Data ---------------------------------------------------------------------

    def add_group(self, name: str) -> str:
        sys_id = new_sys_id()
        self.tables["sys_user_group"][sys_id] = {"sys_id": sys_id, "name": name}
        return sys_id

    def add_user(self, email: str, name: str = "") -> str:
        sys_id = new_sys_id()
        self.tables["sys_user"][sys_id] = {
            "sys_id": sys_id,
            "name": name or email.split("@")[0],
            "email": email,
            "user_name": email.split("@")[0],
        }
        return sys_id

    def add_ticket(self, number: str, table: str = "sc_req_item", **fields: Any) -> dict:
        record = {
            "sys_id": new_sys_id(),
            "number": number,
            "short_description": "",
            "description": "",
            "state": "1",
            "active": "true",
            "priority": "4",
            "due_date": "",
            "assignment_group": "",
            "requested_for": "",
            "work_notes": "",
            "sys_updated_on": now_string(),
            "_journal": [],
        }
        record.update({k: v for k, v in fields.items()})
        with self.lock:
            self.tables[table][record["sys_id"]] = record
        return record

    def update_ticket(self, sys_id: str, table: str = "sc_req_item", **fields: Any) -> None:
        with self.lock:
            self.tables[table][sys_id].update(fields, sys_updated_on=now_string())

    def work_notes(self, sys_id: str, table: str = "sc_req_item") -> list[str]:
        return list(self.tables[table][sys_id]["_journal"])

    def ticket(self, sys_id: str, table: str = "sc_req_item") -> dict:
        return self.tables[table][sys_id]

    # --- Table API semantics ------------------------------------------------------

    def resolve(self, record: dict, path: str) -> str:
        """A (possibly dot-walked) field's stored value."""
        head, _, rest = path.partition(".")
        value = record.get(head, "")
        if not rest:
            return "" if value is None else str(value)
        target = self.tables.get(REFERENCES.get(head, ""), {}).get(value)
        return self.resolve(target, rest) if target else ""

    def matches(self, record: dict, query: str) -> bool:
        for term in filter(None, query.split("^")):
            if term.startswith("ORDERBY"):
                continue
            for op in OPERATORS:
                field, found, value = term.partition(op)
                if found:
                    break
            else:
                return False  # not a condition we know: match nothing (strict instance)
            generated = DATE_GENERATE.match(value)
            if generated:
                value = f"{generated.group(1)} {generated.group(2)}"
            actual = self.resolve(record, field)
            if field == "active" or value in {"true", "false"}:
                actual, value = actual.lower(), value.lower()
            ok = {
                "=": actual == value,
                "!=": actual != value,
                ">=": actual >= value,
                "<=": actual <= value,
                ">": actual > value,
                "<": actual < value,
            }[op]
            if not ok:
                return False
        return True

    def order(self, records: list[dict], query: str) -> list[dict]:
        for term in reversed([t for t in query.split("^") if t.startswith("ORDERBY")]):
            desc = term.startswith("ORDERBYDESC")
            field = term[len("ORDERBYDESC") :] if desc else term[len("ORDERBY") :]
            records = sorted(records, key=lambda r, f=field: self.resolve(r, f), reverse=desc)
        return records

    def display(self, record: dict, path: str) -> str:
        head = path.partition(".")[0]
        value = self.resolve(record, path)
        if "." not in path and head in REFERENCES:
            target = self.tables[REFERENCES[head]].get(value)
            return target.get("name", "") if target else ""
        labels = {**CHOICES.get(path, {}), **self.labels.get(path, {})}
        return labels.get(value, value)

    def project(self, record: dict, fields: list[str], display: str, exclude_links: bool) -> dict:
        names = fields or [k for k in record if not k.startswith("_")]
        out: dict[str, Any] = {}
        for name in names:
            value = self.resolve(record, name)
            shown = self.display(record, name)
            is_reference = "." not in name and name in REFERENCES and value
            if display == "all":
                item: Any = {"display_value": shown, "value": value}
            elif display == "true":
                item = shown
            else:
                item = value
            if is_reference and not exclude_links:
                link = f"{self.url}/api/now/table/{REFERENCES[name]}/{value}"
                item = (
                    {**item, "link": link}
                    if isinstance(item, dict)
                    else {"link": link, "value": item}
                )
            out[name] = item
        return out

    # --- HTTP -----------------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep the test output clean
                pass

            def _send(self, status: int, body: dict | None, headers: dict | None = None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, message: str, detail: str = ""):
                body = {"error": {"message": message, "detail": detail}, "status": "failure"}
                self._send(status, body)

            def _authorised(self) -> bool:
                header = self.headers.get("Authorization", "")
                if header == f"Bearer {fake.token}":
                    return True
                basic = base64.b64encode(f"{fake.user}:{fake.password}".encode()).decode()
                return header == f"Basic {basic}"

            def _route(self, method: str):
                url = urlparse(self.path)
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                fake.calls.append(
                    {
                        "method": method,
                        "path": url.path,
                        "params": params,
                        "body": raw.decode() if raw else "",
                        "headers": dict(self.headers),
                    }
                )
                if fake.fail_status:
                    return self._error(fake.fail_status, "Service Unavailable", "try later")
                if not self._authorised():
                    return self._error(
                        401, "User Not Authenticated", "Required to provide Auth information"
                    )
                match = re.fullmatch(r"/api/now/table/([a-z_0-9]+)(?:/([0-9a-f]{32}))?", url.path)
                if not match or match.group(1) not in fake.tables:
                    return self._error(400, "Invalid table", f"{url.path} is not a table")
                table, sys_id = match.group(1), match.group(2)
                fields = [f for f in params.get("sysparm_fields", "").split(",") if f]
                display = params.get("sysparm_display_value", "false").lower()
                exclude = params.get("sysparm_exclude_reference_link", "false").lower() == "true"
                with fake.lock:
                    rows = fake.tables[table]
                    if method == "GET" and sys_id is None:
                        query = params.get("sysparm_query", "")
                        found = fake.order(
                            [r for r in rows.values() if fake.matches(r, query)], query
                        )
                        offset = int(params.get("sysparm_offset", 0))
                        limit = int(params.get("sysparm_limit", 10000))
                        page = found[offset : offset + limit]
                        body = {"result": [fake.project(r, fields, display, exclude) for r in page]}
                        return self._send(200, body, {"X-Total-Count": str(len(found))})
                    record = rows.get(sys_id)
                    if record is None:
                        return self._error(
                            404,
                            "No Record found",
                            "Record doesn't exist or ACL restricts the record retrieval",
                        )
                    if method == "PATCH":
                        try:
                            changes = json.loads(raw or b"{}")
                        except ValueError:
                            return self._error(400, "Exception while reading request", "bad JSON")
                        for key, value in changes.items():
                            if key in ("work_notes", "comments"):
                                if value:
                                    record["_journal"].append(value)
                            else:
                                record[key] = str(value)
                        record["sys_updated_on"] = now_string()
                    return self._send(
                        200, {"result": fake.project(record, fields, display, exclude)}
                    )

            def do_GET(self):
                self._route("GET")

            def do_PATCH(self):
                self._route("PATCH")

        return Handler

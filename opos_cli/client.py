"""A small client of the OPOS Tracker REST API (``/api/v1/``), with answers mapped to exit codes.

401 (no or bad token), a refused connection, a time-out, a server error and
a throttled login are connection or authentication problems (exit 3);
400, 403, 404 and 409 are the server refusing (exit 1), with the server's
``detail`` and ``reasons`` (or field errors) turned into readable lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from .errors import CliError, Exit

USER_AGENT = "opos-cli/1"


def field_errors(body: Any, prefix: str = "") -> list[str]:
    """DRF's 400 body as lines.

    ``{"samples": [{}, {"events": ["..."]}]}`` becomes ``samples[1].events: ...``.
    """
    lines: list[str] = []
    if isinstance(body, dict):
        for key, value in body.items():
            if key in ("detail", "reasons") and not prefix:
                continue
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors" and not prefix:
                name = ""
            lines.extend(field_errors(value, name))
    elif isinstance(body, list):
        if all(isinstance(item, str) for item in body):
            lines.extend(f"{prefix}: {item}" if prefix else item for item in body)
        else:
            for index, item in enumerate(body):
                lines.extend(field_errors(item, f"{prefix}[{index}]"))
    elif body not in (None, ""):
        lines.append(f"{prefix}: {body}" if prefix else str(body))
    return lines


class Api:
    """Calls to one server with one token (or none, for the login itself)."""

    def __init__(
        self,
        url: str,
        token: str = "",
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.url = url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if token:
            headers["Authorization"] = f"Token {token}"
        self.client = httpx.Client(
            base_url=f"{self.url}/api/v1",
            headers=headers,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; the JSON answer, or a ``CliError`` with the right exit code."""
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise CliError(Exit.CONNECTION, f"{self.url} did not answer in time ({exc})") from exc
        except httpx.TransportError as exc:
            raise CliError(Exit.CONNECTION, f"cannot reach {self.url}: {exc}") from exc
        return self._answer(response)

    def _answer(self, response: httpx.Response) -> Any:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        where = f"{response.request.method} {response.request.url.path}"
        if status < 300:
            if body is None and response.content:
                raise CliError(
                    Exit.CONNECTION,
                    f"{self.url} did not answer with JSON to {where}: is it an OPOS Tracker?",
                    status=status,
                )
            return body
        detail = body.get("detail") if isinstance(body, dict) else None
        reasons = list(body.get("reasons") or []) if isinstance(body, dict) else []
        if status == 401:
            raise CliError(
                Exit.CONNECTION,
                f"not authenticated at {self.url} ({detail or 'no valid token'}): run opos login",
                status=status,
                body=body,
            )
        if status == 429:
            raise CliError(
                Exit.CONNECTION, f"too many attempts: {detail or 'wait a minute'}", status=status
            )
        if status >= 500:
            raise CliError(
                Exit.CONNECTION, f"{self.url} failed with HTTP {status} on {where}", status=status
            )
        if status in (301, 302, 303, 307, 308):
            raise CliError(
                Exit.CONNECTION,
                f"{self.url} redirects {where} to {response.headers.get('location')}: "
                "log in with the final URL",
                status=status,
            )
        if not reasons and status == 400:
            reasons = field_errors(body)
        if body is None and status == 404:
            message = f"{self.url} has no {response.request.url.path} (HTTP 404)"
        else:
            message = str(detail or f"the server refused {where} (HTTP {status})")
        raise CliError(Exit.REFUSED, message, reasons, status=status, body=body)

    # --- Conveniences -------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        return self.call(
            "GET", path, params={k: v for k, v in params.items() if v not in (None, "")}
        )

    def post(self, path: str, data: dict) -> Any:
        return self.call("POST", path, json=data)

    def pages(self, path: str, limit: int | None = None, **params: Any) -> Iterator[dict]:
        """Every item of a list endpoint, following DRF's ``next`` links (up to ``limit``)."""
        body = self.get(path, **params)
        count = 0
        while True:
            items = body.get("results", []) if isinstance(body, dict) else body or []
            for item in items:
                if limit is not None and count >= limit:
                    return
                count += 1
                yield item
            following = body.get("next") if isinstance(body, dict) else None
            if not following:
                return
            body = self.call("GET", following)

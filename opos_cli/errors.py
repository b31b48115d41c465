"""Exit codes and the one exception every command raises to end with one of them."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class Exit(IntEnum):
    """The exit codes scripts can rely on."""

    OK = 0
    REFUSED = 1  # the server said no (reasons printed)
    USAGE = 2  # bad arguments or a bad input file: nothing was sent
    CONNECTION = 3  # cannot reach the server, or not (or no longer) authenticated


class CliError(Exception):
    """End the command with ``code``, printing ``message`` and any ``reasons``."""

    def __init__(
        self,
        code: Exit,
        message: str,
        reasons: list[str] | None = None,
        *,
        status: int | None = None,
        body: Any = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reasons = reasons or []
        self.status = status
        self.body = body

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "error": self.message,
            "reasons": self.reasons,
            "exit": int(self.code),
        }
        if self.status is not None:
            out["status"] = self.status
        return out

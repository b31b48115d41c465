"""Refusals any service raises, with no domain; the API answers them (``common.api_errors``).

A service says why it refuses by the class it raises: ``ValidationError`` (the input is
wrong: 400, keyed by field), ``PermissionDenied`` (403), ``FieldConflict`` (fields that
cannot change in the current state: 409, keyed by field) or a ``Refused`` whose ``kind``
chooses the status, with the reasons listed.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError


class PermissionDenied(Exception):
    """The user may not do this (HTTP 403)."""


class FieldConflict(ValidationError):
    """Fields the user may change in other states, but not in the current one (HTTP 409).

    A ``ValidationError`` keyed by field name, so a form shows each message next to its
    field; the API answers 409 instead of 400, with ``detail`` as the summary.
    """

    detail = "These fields cannot be changed in the current state."


class Refused(Exception):
    """A refused action with its reasons.

    ``kind`` says why: ``forbidden`` (the role may not: HTTP 403), ``conflict`` (the state
    forbids it: 409) or ``invalid`` (the input is wrong, e.g. a required note is missing:
    400).
    """

    def __init__(self, detail: str, reasons: list[str] | None = None, kind: str = "conflict"):
        super().__init__(detail)
        self.detail = detail
        self.reasons = reasons or []
        self.kind = kind

    @property
    def conflict(self) -> bool:
        return self.kind == "conflict"

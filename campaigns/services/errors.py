"""The one error type of the campaign use cases, and the role check they share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.errors import Refused
from experiments.models.visibility import is_operator

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


class CampaignError(Refused):
    """A refused campaign use case.

    ``kind`` says why, as for request transitions: ``forbidden`` (the role
    may not: HTTP 403), ``conflict`` (the current state forbids it: 409) or
    ``invalid`` (the input is wrong: 400). ``reasons`` name each problem,
    field first (``"deadline: 2026-01-01 is in the past"``).
    """

    # A refusal like any other (``common.errors.Refused``), but most campaign refusals are
    # about the input, so that is the default kind.
    def __init__(self, detail: str, reasons: list[str] | None = None, kind: str = "invalid"):
        super().__init__(detail, reasons, kind)

    def __str__(self) -> str:
        if not self.reasons:
            return self.detail
        return f"{self.detail} " + "; ".join(self.reasons)


def require_operator(user: AbstractBaseUser | None, what: str) -> None:
    """Only operators (and admins) plan and steer campaigns."""
    if user is None or not is_operator(user):
        raise CampaignError(f"Only OPOS operators may {what}.", kind="forbidden")

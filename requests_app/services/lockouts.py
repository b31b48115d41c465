"""Sign-in lockouts (django-axes' failure records), as operators see and clear them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max, Sum
from django.utils import timezone

from experiments.services.audit import record

# Under a spray of guesses the page shows the pairs with the most failures first.
MAX_SHOWN = 500


@dataclass(frozen=True)
class Lockout:
    """Failed sign-ins of one (normalised) username from one address."""

    username: str
    ip_address: str
    failures: int
    last_attempt: datetime
    locked: bool
    until: datetime | None


def lockouts(now: datetime | None = None) -> list[Lockout]:
    """Pairs with failures still counting (within the cool-off), locked ones first."""
    now = now or timezone.now()
    cooloff = settings.AXES_COOLOFF_TIME
    rows = (
        AccessAttempt.objects.filter(attempt_time__gte=now - cooloff)
        .values("username", "ip_address")
        .annotate(failures=Sum("failures_since_start"), last=Max("attempt_time"))
        .order_by("-failures", "-last")[:MAX_SHOWN]
    )
    limit = int(settings.AXES_FAILURE_LIMIT)
    found = []
    for row in rows:
        locked = row["failures"] >= limit
        until = row["last"] + cooloff if locked else None
        found.append(
            Lockout(
                row["username"] or "",
                row["ip_address"] or "",
                row["failures"],
                row["last"],
                locked,
                until,
            )
        )
    return sorted(found, key=lambda lo: (not lo.locked, -lo.last_attempt.timestamp()))


@transaction.atomic
def clear_lockout(username: str, ip_address: str, actor: AbstractBaseUser) -> int:
    """Forget the failures of ``username`` from ``ip_address``; recorded in the audit trail.

    Returns how many failure records were removed (0: nothing to clear).
    """
    removed, _ = AccessAttempt.objects.filter(username=username, ip_address=ip_address).delete()
    if removed:
        record(
            "clear_lockout",
            f"sign-in failures of {username} from {ip_address}",
            actor=actor,
            username=username,
            ip_address=ip_address,
        )
    return removed

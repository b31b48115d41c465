"""One bad campaign never stops the others: its error is recorded on it, and the rest go on.

Scheduling and submission work on every open campaign in one cycle. A campaign whose
step raises (a value that breaks the arithmetic, a bug met only by its data, a database
error on its rows) would otherwise end the cycle for everyone, every cycle, until someone
repaired the row by hand. Instead each campaign's step runs in a savepoint
(``isolated``); an error rolls back only that campaign's part, is recorded on the
campaign (``Campaign.fault``, a ``blocked`` event in its history), shown as "blocked"
with the reason on every page, and announced once; the cycle goes on with the others.
The step is tried again on the next cycle, and a success clears the fault (an
``unblocked`` event), so repairing the row through the product is all it takes.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.db import transaction
from django.utils import timezone

from ..choices import CampaignEventKind
from ..models import Campaign, CampaignEvent
from .announcements import announce_campaign

log = logging.getLogger(__name__)

SCHEDULING = "scheduling"
SUBMISSION = "submission"


def fault_text(step: str, exc: BaseException) -> str:
    """What the campaign page shows: the step and the error, without a traceback."""
    message = str(exc).strip() or "no message"
    return f"{step} failed: {type(exc).__name__}: {message}"[:500]


def record_fault(
    campaign_id: int, step: str, exc: BaseException, now: dt.datetime | None = None
) -> bool:
    """Record that ``step`` raised for the campaign; True when it was not blocked before.

    A new fault, or a different error than the one recorded, is a ``blocked`` event; the
    same error again changes nothing (it is retried every cycle). Operators and the people
    of its requests are told once, when the campaign becomes blocked.
    """
    now = now or timezone.now()
    text = fault_text(step, exc)
    log.error("campaign %s blocked: %s", campaign_id, text, exc_info=exc)
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
        if campaign is None or campaign.fault == text:
            return False
        newly = not campaign.fault
        Campaign.objects.filter(pk=campaign_id).update(
            fault=text, fault_since=campaign.fault_since if not newly else now
        )
        CampaignEvent.objects.create(
            campaign_id=campaign_id, kind=CampaignEventKind.BLOCKED, reason=text
        )
        if newly:
            transaction.on_commit(
                lambda: announce_campaign(
                    campaign_id,
                    f"Campaign {campaign.name} is blocked: {text}. Its other work waits; "
                    "operators: repair what the error names, it is retried every cycle.",
                )
            )
    return newly


def clear_faults(campaign_ids: Iterable[int], step: str) -> int:
    """Clear the ``step`` faults of campaigns whose step just succeeded; how many cleared."""
    ids = list(campaign_ids)
    if not ids:
        return 0
    prefix = f"{step} failed:"
    with transaction.atomic():
        cleared = list(
            Campaign.objects.select_for_update()
            .filter(pk__in=ids, fault__startswith=prefix)
            .values_list("pk", "fault")
        )
        if not cleared:
            return 0
        Campaign.objects.filter(pk__in=[pk for pk, _ in cleared]).update(fault="", fault_since=None)
        CampaignEvent.objects.bulk_create(
            CampaignEvent(
                campaign_id=pk, kind=CampaignEventKind.UNBLOCKED, reason=f"was: {fault}"[:5000]
            )
            for pk, fault in cleared
        )
    return len(cleared)


@contextmanager
def isolated(
    campaign_id: int, step: str, faults: dict[int, str] | None = None, savepoint: bool = True
) -> Iterator[None]:
    """Run one campaign's part of a cycle; an error blocks only that campaign.

    With ``savepoint`` the part runs in ``transaction.atomic`` so its writes roll back
    together. Submission must not: its protocol commits the submission record *before*
    it calls the batch system, and its own atomic blocks already roll back their writes.
    ``faults`` (optional) collects the campaigns that failed, for the caller's report.
    Only ``Exception``: a worker shutting down (``SystemExit``, ``KeyboardInterrupt``)
    still stops the cycle.
    """
    try:
        if savepoint:
            with transaction.atomic():
                yield
        else:
            yield
    except Exception as exc:  # any error of one campaign's part is that campaign's
        record_fault(campaign_id, step, exc)
        if faults is not None:
            faults[campaign_id] = fault_text(step, exc)

"""Telling people that work stopped: once per change, never every cycle.

Who hears it: the operators (one email), and for each request concerned its requester,
watchers and assignee, through a note of the tracker on the request (its history, their
email, and a work note on its service-desk ticket). The callers decide *when*: a stuck
flag that was just raised, a campaign that just became blocked. A failing mail server or
desk never undoes what is announced (intake's notifications log and carry on).
"""

from __future__ import annotations

import logging
from collections import defaultdict

from django.conf import settings
from django.urls import reverse

from requests_app.services import notify_operators, post_system_notes

from ..models import Campaign, CampaignRequest

log = logging.getLogger(__name__)


def _campaign_url(campaign_id: int) -> str:
    return f"{settings.SITE_URL}{reverse('campaigns:detail', args=[campaign_id])}"


def announce(notes: dict[int, list[str]], subject: str, campaign_ids: set[int]) -> None:
    """Notes on requests (``{request id: [lines]}``) and one email to the operators."""
    if not notes and not campaign_ids:
        return
    post_system_notes({rid: "\n".join(lines) for rid, lines in notes.items()})
    body = [line for lines in notes.values() for line in lines] or [subject]
    names = dict(Campaign.objects.filter(pk__in=campaign_ids).values_list("pk", "name"))
    body += ["", *(f"{names.get(c, c)}: {_campaign_url(c)}" for c in sorted(campaign_ids))]
    notify_operators(subject, "\n".join(body))


def announce_campaign(campaign_id: int, text: str) -> None:
    """The same line on every request of one campaign, and to the operators."""
    request_ids = CampaignRequest.objects.filter(campaign_id=campaign_id).values_list(
        "request_id", flat=True
    )
    notes: dict[int, list[str]] = defaultdict(list)
    for rid in request_ids:
        notes[rid].append(text)
    announce(dict(notes), text.split(":")[0], {campaign_id})

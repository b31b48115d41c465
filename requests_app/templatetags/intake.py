"""Template filters of the intake pages: durations, deadlines, query strings."""

import datetime as dt

from django import template
from django.utils import timezone

from ..services.clock import duration_text
from ..workflow import ACTIONS

register = template.Library()


@register.filter
def duration(seconds) -> str:
    """``93784`` -> ``"1 d 2 h"``; ``125`` -> ``"2 min"``: two units at most."""
    try:
        return duration_text(int(seconds))
    except (TypeError, ValueError):
        return ""


@register.filter
def deadline_in(deadline: dt.date | None) -> str:
    """How far away a deadline is, in words: ``in 3 days``, ``today``, ``2 days late``."""
    if not deadline:
        return ""
    days = (deadline - timezone.localdate()).days
    if days == 0:
        return "today"
    if days > 0:
        return "tomorrow" if days == 1 else f"in {days} days"
    return "1 day late" if days == -1 else f"{-days} days late"


@register.filter
def deadline_class(deadline: dt.date | None) -> str:
    """A badge class for a deadline: late, close (within a week) or fine."""
    if not deadline:
        return ""
    days = (deadline - timezone.localdate()).days
    return "bad" if days < 0 else "warn" if days <= 7 else ""


@register.simple_tag(takes_context=True)
def with_page(context, page: int) -> str:
    """The current query string with ``page`` replaced, for pagination links."""
    query = context["request"].GET.copy()
    query["page"] = page
    return query.urlencode()


# Recorded actions that are not state-machine actions.
RECORD_LABELS = {"create": "Filed the request", "edit": "Edited"}


@register.filter
def action_label(name: str) -> str:
    """A recorded action's label: ``request_info`` -> ``Ask for information``."""
    if name in RECORD_LABELS:
        return RECORD_LABELS[name]
    spec = ACTIONS.get(name)
    return spec.label if spec else name.replace("_", " ").capitalize()


@register.filter
def change_value(value) -> str:
    """One side of a recorded edit, readable: lists joined, nothing as a dash."""
    if value in (None, "", [], {}):
        return "—"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value)


@register.filter
def ticket_url(ticket: str) -> str:
    """The service-desk page of ``ticket`` from ``OPOS_TICKET_URL`` ("" when unset)."""
    from urllib.parse import quote

    from django.conf import settings

    pattern = getattr(settings, "OPOS_TICKET_URL", "")
    if not pattern or not ticket:
        return ""
    return pattern.replace("{ticket}", quote(str(ticket), safe=""))


@register.simple_tag(takes_context=True)
def with_format(context, value: str) -> str:
    """The current query string with ``format`` set and no page (an export of every page)."""
    query = context["request"].GET.copy()
    query["format"] = value
    query.pop("page", None)
    return query.urlencode()

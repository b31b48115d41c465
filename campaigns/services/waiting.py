"""What waits for an operator in execution, for the home page: handed to intake through
``requests_app.extensions`` by ``campaigns.apps``, so intake lists it without importing
execution."""

from __future__ import annotations

from typing import Any

from ..choices import Feasibility
from ..models import Campaign
from . import projection

LIMIT = 10


def blocked_campaigns(user: Any) -> dict[str, Any] | None:
    """Open campaigns that will not finish without an operator, with the reason (the
    forecast's own "blocked": gave-up jobs to recover, a scheduling fault). Operators only;
    the four queries of the forecast plus one."""
    from experiments.models.visibility import is_operator

    if not is_operator(user):
        return None
    blocked = {
        pk: f.reason
        for pk, f in projection.campaign_forecasts().items()
        if f.status == Feasibility.BLOCKED
    }
    campaigns = Campaign.objects.filter(pk__in=blocked).select_related("experiment")
    items = [
        {
            "label": f"{c.experiment.name} · {c.name}",
            "url": c.get_absolute_url(),
            "detail": blocked[c.pk],
        }
        for c in campaigns.order_by("deadline", "id")[:LIMIT]
    ]
    return {
        "title": "Blocked campaigns",
        "items": items,
        "count": len(blocked),
        "empty": "No campaign is blocked.",
    }

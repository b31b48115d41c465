"""Demo data of the execution side: DUNE's "MCC5.0" campaign with its approved request.

Idempotent: the campaign is found by its natural key (experiment, name) and
the request by its ticket; a request already in a campaign is left alone.
Runs after ``requests_app.demo.seed`` (``manage.py seed_demo``, opos/management).
"""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.utils import timezone

from experiments.models import Experiment
from requests_app.choices import Priority, RequestState
from requests_app.demo import SeedReport
from requests_app.models import ProductionRequest

from .models import Campaign, CampaignRequest
from .services import create_campaign, schedule_requests

CAMPAIGN = "MCC5.0"
OPERATOR = "olivia"
APPROVED_TICKET = "RITM0012001"  # "MCC5.0 beam nu_mu CC sample", approved by the intake demo


def seed(report: SeedReport) -> None:
    """Create the MCC5.0 campaign and schedule the approved demo request into it."""
    dune = Experiment.objects.filter(slug="dune").first()
    operator = get_user_model().objects.filter(username=OPERATOR).first()
    if dune is None or operator is None:
        report.lines.append("campaigns: no DUNE experiment or operator to seed with")
        return
    campaign = Campaign.objects.filter(experiment=dune, name=CAMPAIGN).first()
    if campaign is None:
        campaign = create_campaign(
            operator,
            dune,
            name=CAMPAIGN,
            deadline=timezone.localdate() + dt.timedelta(days=21),
            priority=Priority.HIGH,
            description=(
                "DUNE's MCC5.0 production round: oscillations, supernova, proton decay "
                "and cosmogenics samples, scheduled by deadline."
            ),
        )
    request = ProductionRequest.objects.filter(experiment=dune, ticket=APPROVED_TICKET).first()
    line = f"Campaign {campaign.name} ({campaign.state})"
    if (
        request is not None
        and request.state == RequestState.APPROVED
        and not CampaignRequest.objects.filter(request=request).exists()
    ):
        result = schedule_requests(campaign, [request.pk], operator, note="MCC5.0 demo round")
        line += f": scheduled {request.number}, {result.jobs} jobs planned"
    report.lines.append(line)

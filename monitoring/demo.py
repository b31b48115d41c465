"""Demo data of the promises: DUNE's "MCC5.0 physics round", promised and judged.

One request of each working group (oscillations, supernova, proton decay, cosmogenics) is
submitted by the liaison and approved by the operator (so the service-desk clock has a
history), scheduled into the round and launched; the operator confirms the tracker's
proposed commitments of each request. Cosmogenics was promised its 100 % a day sooner than
the tracker proposed, then put on hold for an account permission problem at the storage
element: its promises are at risk (announced on the request and its ticket) while the
three other groups' are on track. With workers running, the round runs on the demo
backend and its promises become met as the milestones are reached.

Idempotent: requests are found by their tickets, the round by its name; a request with
commitments keeps them. Runs after the intake and execution seeds (``manage.py
seed_demo``, opos/management).
"""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.utils import timezone

from campaigns.choices import CampaignState
from campaigns.models import Campaign, CampaignRequest
from campaigns.services import campaign_action, create_campaign, schedule_requests
from experiments.models import Experiment, PhysicsGroup, WorkflowTemplate
from requests_app.choices import Priority, RequestState
from requests_app.demo import SeedReport
from requests_app.models import ProductionRequest, Sample
from requests_app.services.numbering import next_request_number
from requests_app.services.transitions import transition

from .choices import MilestoneKind
from .models import Commitment
from .services import commitments as promises

ROUND = "MCC5.0 physics round"
OPERATOR = "olivia"
LIAISON = "liam"
AT_RISK_GROUP = "cosmogenics"
HOLD_NOTE = "Account permission problem at the storage element."
# group, ticket, title, events, events per job, days to deadline
ROUND_REQUESTS = [
    ("oscillations", "RITM0012101", "MCC5.0 round: beam nu_e appearance", 8000, 1000, 14),
    ("supernova", "RITM0012102", "MCC5.0 round: supernova burst, 10 kpc", 4000, 500, 14),
    ("proton-decay", "RITM0012103", "MCC5.0 round: p -> K+ nu, dressed", 6000, 1000, 14),
    ("cosmogenics", "RITM0012104", "MCC5.0 round: cosmogenic neutrons", 6000, 1000, 10),
]


def _round_request(dune, liaison, operator, template, spec) -> ProductionRequest:
    """The request of one group, submitted by the liaison and approved by the operator."""
    group_slug, ticket, title, events, per_job, days = spec
    request = ProductionRequest.objects.filter(experiment=dune, ticket=ticket).first()
    if request is not None:
        return request
    request = ProductionRequest.objects.create(
        number=next_request_number(dune),
        ticket=ticket,
        experiment=dune,
        physics_group=PhysicsGroup.objects.get(experiment=dune, slug=group_slug),
        requester=liaison,
        title=title,
        description=f"{title}, for the MCC5.0 physics round.",
        deadline=timezone.localdate() + dt.timedelta(days=days),
        priority=Priority.NORMAL,
        state=RequestState.DRAFT,
    )
    Sample.objects.create(
        request=request,
        name=f"{group_slug}-round",
        template=template,
        events=events,
        events_per_job=per_job,
        parameters={"seed": int(ticket[-3:]), "energy_gev": 2.5},
        output_dataset=f"{dune.slug}:mcc5.0-round:{group_slug}",
    )
    transition(request, "submit", liaison)
    return transition(request, "approve", operator, note="MCC5.0 physics round")


def seed(report: SeedReport) -> None:
    """Create the round, launch it, record and judge what is promised to each group."""
    User = get_user_model()
    dune = Experiment.objects.filter(slug="dune").first()
    operator = User.objects.filter(username=OPERATOR).first()
    liaison = User.objects.filter(username=LIAISON).first()
    template = (
        WorkflowTemplate.objects.filter(experiment=dune, name="toy-gen-sim-reco")
        .order_by("-version")
        .first()
    )
    if None in (dune, operator, liaison, template):
        report.lines.append("promises: no DUNE experiment, operator, liaison or template")
        return
    campaign = Campaign.objects.filter(experiment=dune, name=ROUND).first()
    if campaign is None:
        campaign = create_campaign(
            operator,
            dune,
            name=ROUND,
            deadline=timezone.localdate() + dt.timedelta(days=14),
            priority=Priority.NORMAL,
            description=(
                "One sample of each working group, promised to the collaboration: "
                "start today, half after a few days, done before the meeting."
            ),
        )
    requests = [_round_request(dune, liaison, operator, template, s) for s in ROUND_REQUESTS]
    scheduled = set(CampaignRequest.objects.values_list("request_id", flat=True))
    waiting = [r.pk for r in requests if r.pk not in scheduled]
    if waiting and campaign.state == CampaignState.PLANNED:
        schedule_requests(campaign, waiting, operator, note="MCC5.0 physics round")
        campaign = campaign_action(campaign, "launch", operator, note="The round starts.")
    now = timezone.now()
    promised = set(
        Commitment.objects.filter(request__in=requests).values_list("request_id", flat=True)
    )
    for request in ProductionRequest.objects.filter(pk__in=[r.pk for r in requests]):
        if request.pk in promised or request.state == RequestState.ON_HOLD:
            continue
        proposed = promises.proposal(request, now)
        moments = dict(proposed)
        if request.physics_group.slug == AT_RISK_GROUP:
            # Promised a day sooner than the tracker proposed, to make the meeting.
            moments[MilestoneKind.ALL_EVENTS] = max(
                moments[MilestoneKind.ALL_EVENTS] - dt.timedelta(days=1),
                moments[MilestoneKind.HALF_EVENTS],
            )
        promises.confirm(request, operator, moments, proposed=proposed, now=now)
        if request.physics_group.slug == AT_RISK_GROUP:
            transition(request, "hold", operator, note=HOLD_NOTE)
    checked = promises.check(now)
    report.lines.append(
        f"Campaign {campaign.name} ({campaign.state}): {len(requests)} requests promised, "
        f"{checked.announced} promise{'s' if checked.announced != 1 else ''} announced at risk"
    )

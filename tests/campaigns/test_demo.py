"""The demo seed plans DUNE's MCC5.0 campaign with the approved request, once."""

import io

import pytest
from django.core.management import call_command

from campaigns.models import Campaign, Job
from requests_app.choices import RequestState

pytestmark = pytest.mark.django_db


def test_seed_demo_plans_the_mcc5_campaign_once():
    call_command("seed_demo", stdout=io.StringIO())
    campaign = Campaign.objects.get(experiment__slug="dune", name="MCC5.0")
    (link,) = campaign.links.select_related("request")
    assert link.request.title == "MCC5.0 beam nu_mu CC sample"
    assert link.request.state == RequestState.SCHEDULED
    jobs = Job.objects.filter(stage__campaign=campaign).count()
    assert jobs == 30  # 20,000 events by 2,000: 10 per stage

    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "Campaign MCC5.0 (planned)" in out.getvalue()
    assert Campaign.objects.filter(name="MCC5.0").count() == 1
    assert Job.objects.filter(stage__campaign=campaign).count() == jobs

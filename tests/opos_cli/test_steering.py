"""``opos campaigns recover|force-complete|launch-full|settings`` and ``opos requests
clone|extend|extension|force-complete`` against the live server: answers, refusals and exit
codes (0 done, 1 refused, 2 usage)."""

from __future__ import annotations

import pytest

from campaigns.models import CampaignEvent, Extension, Stage
from campaigns.services import campaign_action
from requests_app.models import ProductionRequest
from tests.campaigns.factories import workflow
from tests.monitoring.builders import planned_campaign

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def running(dune):
    campaign = planned_campaign(
        dune.experiment,
        dune.operator,
        events=1000,
        per_job=100,
        name="MCC5.0",
        template=workflow(dune.experiment),
    )
    return campaign, ProductionRequest.objects.get(campaign_link__campaign=campaign)


def test_campaign_steering_commands(cli, live_server, dune, running):
    campaign, _request = running
    cli.login(live_server.url, "op")

    done = cli("campaigns", "settings", "MCC5.0", "--test-jobs", "2", "--completion-pct", "90")
    assert done.code == 0, done.err
    assert done.out.strip() == (
        "MCC5.0: 2 test jobs per stage, full launch on a click, force-complete at 90 %."
    )
    recovered = cli(
        "campaigns", "recover", "MCC5.0", "--memory", "900", "--walltime", "01:30:00", "--json"
    )
    assert recovered.code == 0, recovered.err
    assert recovered.json()["overrides"] == {"memory_mb": 900, "walltime_s": 5400}
    assert recovered.json()["jobs"] == []  # nothing failed yet
    event = CampaignEvent.objects.filter(campaign=campaign, kind="recover").get()
    assert event.changes["overrides"] == [None, {"memory_mb": 900, "walltime_s": 5400}]

    too_much = cli("campaigns", "recover", "MCC5.0", "--memory", "999999999")
    assert too_much.code == 1
    assert "memory_mb: at most 64000 (OPOS_MAX_MEMORY_MB)" in too_much.err
    assert cli("campaigns", "recover", "MCC5.0", "--walltime", "1:99:00").code == 2
    assert cli("campaigns", "recover", "MCC5.0", "--param", "seed").code == 2

    campaign_action(campaign, "launch", dune.operator)  # the launch has its own command
    below = cli("campaigns", "force-complete", "MCC5.0", "--reason", "enough", "--json")
    assert below.code == 1
    assert below.json()["status"] == 409
    assert below.json()["reasons"] == [
        "done: 0.0 % of the final jobs (0 of 5); the threshold is 90 % (the campaign's setting)"
    ]
    early = cli("campaigns", "launch-full", "MCC5.0")
    assert early.code == 1
    assert "A reason is required to launch fully without a passed test." in early.err
    full = cli("campaigns", "launch-full", "MCC5.0", "-m", "the code is known to work")
    assert full.code == 0, full.err
    assert full.out.strip() == "MCC5.0: full launch (active)."
    assert cli("campaigns", "launch-full", "MCC5.0").code == 1  # nothing waits any more


def test_request_steering_commands(cli, live_server, dune, running):
    campaign, request = running
    cli.login(live_server.url, "liaison")

    cloned = cli("requests", "clone", request.number, "--title", "Round two", "--json")
    assert cloned.code == 0, cloned.err
    assert (cloned.json()["state"], cloned.json()["title"]) == ("draft", "Round two")
    refused = cli("requests", "clone", request.number, "--deadline", "2001-01-01")
    assert refused.code == 1 and "deadline:" in refused.err

    filed = cli("requests", "extend", request.number, "--events", "250", "--reason", "more")
    assert filed.code == 0, filed.err
    extension = Extension.objects.get()
    assert filed.out.strip().startswith(f"{request.number}: extension {extension.pk} of ")
    assert cli("requests", "extend", request.number, "--events", "x", "-m", "r").code == 2
    not_mine = cli("requests", "extension", "approve", str(extension.pk))
    assert not_mine.code == 1 and "Only OPOS operators may approve extensions." in not_mine.err

    cli.login(live_server.url, "op")
    approved = cli("requests", "extension", "approve", str(extension.pk), "--json")
    assert approved.code == 0, approved.err
    assert (approved.json()["state"], approved.json()["jobs_added"]) == ("approved", 8)
    assert Stage.objects.get(request=request, position=0).jobs_total == 13
    campaign_action(campaign, "launch", dune.operator)
    forced = cli("requests", "force-complete", request.number, "-m", "enough")
    assert forced.code == 1
    assert "the threshold is 95 %" in forced.err

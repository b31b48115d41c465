"""``opos campaigns what-if`` and ``opos requests what-if`` against the live server: the
answer of the what-if API, as text or JSON, nothing changed, refusals with the exit codes."""

from __future__ import annotations

import pytest

from campaigns.models import Campaign
from requests_app.choices import RequestState
from tests.campaigns.factories import approved_request, workflow
from tests.monitoring.builders import launch, planned_campaign

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def busy(dune):
    """A running round on the local slots, a planned urgent one, an approved request and a
    submitted one."""
    running = launch(
        planned_campaign(
            dune.experiment,
            dune.operator,
            events=40_000,
            per_job=100,
            days=30,
            name="SBND reprocessing",
        ),
        dune.operator,
    )
    urgent = planned_campaign(
        dune.experiment, dune.operator, events=40_000, per_job=100, days=30, name="urgent"
    )
    Campaign.objects.filter(pk=urgent.pk).update(priority="critical")
    more = approved_request(
        dune.experiment, template=workflow(dune.experiment, name="more"), events=20_000
    )
    asked = approved_request(
        dune.experiment,
        template=workflow(dune.experiment, name="asked"),
        events=40_000,
        priority="critical",
        state=RequestState.SUBMITTED,
    )
    return running, urgent, more, asked


def test_what_a_launch_would_do_as_text_and_json(cli, live_server, busy):
    running, urgent, _more, _asked = busy
    cli.login(live_server.url, "op")

    text = cli("campaigns", "what-if", "urgent", "--action", "launch")
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert lines[0] == "What-if: launching urgent (nothing changed)"
    assert lines[1].startswith("  itself: ")
    assert "Effect on others:" in lines
    assert any(line.startswith("  SBND reprocessing") and " h" in line for line in lines)

    data = cli("campaigns", "what-if", "urgent", "--action", "launch", "--json").json()
    assert data["change"] == "launch" and data["campaign"] == urgent.pk
    (effect,) = [e for e in data["effects"] if e["campaign"] == running.pk and not e["request"]]
    assert effect["delta_hours"] > 1
    urgent.refresh_from_db()
    assert urgent.state == "planned"  # nothing changed


def test_a_priority_change_a_scheduling_and_an_approval(cli, live_server, busy):
    running, urgent, more, asked = busy
    cli.login(live_server.url, "op")
    launch(urgent, urgent.created_by)

    lower = cli("campaigns", "what-if", "urgent", "--action", "priority", "--priority", "low")
    assert lower.code == 0, lower.err
    assert "What-if: priority low for urgent" in lower.out

    add = cli(
        "campaigns",
        "what-if",
        "SBND reprocessing",
        "--action",
        "schedule",
        "--request",
        more.number,
        "--json",
    )
    assert add.code == 0, add.err
    subject = add.json()["subject"]
    assert subject["campaign"] == running.pk
    assert subject["after_finish"] > subject["before_finish"]

    approve = cli("requests", "what-if", asked.number, "--json")
    assert approve.code == 0, approve.err
    assert approve.json()["change"] == "approve" and approve.json()["request"] == asked.number
    assert any(e["campaign"] == running.pk for e in approve.json()["effects"])
    asked.refresh_from_db()
    assert asked.state == RequestState.SUBMITTED


def test_refusals_keep_the_exit_codes(cli, live_server, busy):
    _running, _urgent, more, _asked = busy
    cli.login(live_server.url, "op")
    # Bad arguments: nothing sent, exit 2.
    assert cli("campaigns", "what-if", "urgent", "--action", "priority").code == 2
    assert cli("campaigns", "what-if", "urgent", "--action", "schedule").code == 2
    assert cli("campaigns", "what-if", "urgent", "--action", "explode").code == 2
    # The server refuses: an approved request is not one to approve (400), exit 1.
    refused = cli("requests", "what-if", more.number, "--json")
    assert refused.code == 1 and refused.json()["status"] == 400
    assert "not submitted" in " ".join(refused.json()["reasons"])
    # Not an operator: 403, exit 1.
    cli.login(live_server.url, "liaison")
    denied = cli("campaigns", "what-if", "urgent", "--action", "launch")
    assert denied.code == 1 and "operator" in denied.err


def test_a_decision_taken_by_the_cli_records_the_effect_computed_at_it(cli, live_server, busy):
    from campaigns.models import CampaignEvent

    _running, urgent, more, _asked = busy
    cli.login(live_server.url, "op")
    launched = cli("campaigns", "launch", "urgent", "--note", "physics first")
    assert launched.code == 0, launched.err
    event = CampaignEvent.objects.get(campaign=urgent, kind="launch")
    lines = event.changes["effect_computed"]  # nobody was shown it: computed at the launch
    assert lines[0].startswith("itself: urgent")
    assert any(line.startswith("SBND reprocessing") for line in lines)
    scheduled = cli("campaigns", "schedule", "urgent", more.number)
    assert scheduled.code == 0, scheduled.err
    added = CampaignEvent.objects.get(campaign=urgent, kind="request_added", request=more)
    assert "effect_computed" in added.changes

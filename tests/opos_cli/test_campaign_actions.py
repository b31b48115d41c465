"""``opos campaigns schedule|launch|pause|resume|cancel|priority`` against the live server:
each reaches the campaign API, is recorded there, and refusals keep the exit codes."""

from __future__ import annotations

import datetime as dt

import pytest

from campaigns.models import Campaign, CampaignEvent, Stage
from requests_app.choices import RequestState
from tests.campaigns.factories import approved_request, workflow

pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE = dt.date.today() + dt.timedelta(days=40)


@pytest.fixture
def mcc(dune):
    return Campaign.objects.create(
        experiment=dune.experiment, name="MCC5.0", deadline=DEADLINE, backend="local"
    )


@pytest.fixture
def approved(dune):
    return approved_request(dune.experiment, template=workflow(dune.experiment), days=30)


def test_schedule_then_steer_a_campaign(cli, live_server, mcc, approved):
    cli.login(live_server.url, "op")

    scheduled = cli("campaigns", "schedule", "MCC5.0", approved.number, "--note", "round one")
    assert scheduled.code == 0, scheduled.err
    assert scheduled.out.startswith(f"Scheduled {approved.number} into MCC5.0: 3 stages, ")
    approved.refresh_from_db()
    assert approved.state == RequestState.SCHEDULED
    assert Stage.objects.filter(request=approved).count() == 3

    # Pausing a planned campaign: refused by the server with its reason, exit 1.
    early = cli("campaigns", "pause", "MCC5.0")
    assert early.code == 1 and "pause" in early.err.lower()

    for action, state in (("launch", "active"), ("pause", "paused"), ("resume", "active")):
        result = cli("campaigns", action, "MCC5.0", "--note", f"{action} by the CLI")
        assert result.code == 0, result.err
        assert result.out == f"{action.capitalize()} done: MCC5.0 (dune) is {state}.\n"
    mcc.refresh_from_db()
    assert mcc.state == "active"
    notes = set(CampaignEvent.objects.filter(campaign=mcc).values_list("reason", flat=True))
    assert {"launch by the CLI", "pause by the CLI", "resume by the CLI"} <= notes

    # Cancel needs a note: the server's refusal names it; then with one, as JSON.
    bare = cli("campaigns", "cancel", "MCC5.0", "--json")
    assert bare.code == 1 and bare.json()["status"] == 400
    cancelled = cli("campaigns", "cancel", "MCC5.0", "-m", "wrong generator", "--json")
    assert cancelled.code == 0, cancelled.out
    assert cancelled.json()["state"] == "cancelled"


def test_change_the_priority_with_a_reason(cli, live_server, mcc):
    cli.login(live_server.url, "op")
    result = cli("campaigns", "priority", "MCC5.0", "high", "--reason", "physics deadline")
    assert result.code == 0, result.err
    assert result.out == "MCC5.0: priority normal -> high.\n"
    mcc.refresh_from_db()
    assert mcc.priority == "high"
    event = CampaignEvent.objects.filter(campaign=mcc).latest("id")
    assert event.reason == "physics deadline"
    assert event.changes["priority"] == ["normal", "high"]

    assert cli("campaigns", "priority", "MCC5.0", "urgent", "-r", "x").code == 2
    assert cli("campaigns", "priority", "MCC5.0", "low", "-r", " ").code == 2
    mcc.refresh_from_db()
    assert mcc.priority == "high"


def test_refusals_keep_the_exit_codes(cli, live_server, mcc, approved, closed_port_url):
    cli.login(live_server.url, "liaison")
    refused = cli("campaigns", "launch", "MCC5.0", "--json")
    assert refused.code == 1 and refused.json()["status"] == 403
    assert "Only OPOS operators" in refused.json()["error"]
    not_scheduled = cli("campaigns", "schedule", "MCC5.0", approved.number)
    assert not_scheduled.code == 1

    cli.login(live_server.url, "op")
    unknown = cli("campaigns", "launch", "MCC9.9")
    assert unknown.code == 1 and "no campaign named 'MCC9.9'" in unknown.err
    no_request = cli("campaigns", "schedule", "MCC5.0", "DUNE-2026-9999")
    assert no_request.code == 1 and "no request DUNE-2026-9999" in no_request.err
    assert cli("campaigns", "launch").code == 2
    offline = cli(
        "campaigns", "launch", "MCC5.0", env={"OPOS_URL": closed_port_url, "OPOS_TOKEN": "x"}
    )
    assert offline.code == 3
    mcc.refresh_from_db()
    approved.refresh_from_db()
    assert (mcc.state, approved.state) == ("planned", RequestState.APPROVED)

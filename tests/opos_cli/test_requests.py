"""``opos requests ...`` end to end: list, show, create from YAML, transition, every exit code."""

from __future__ import annotations

import datetime as dt
import json
import textwrap

import pytest

from requests_app.choices import RequestState
from requests_app.models import ProductionRequest
from tests.factories import ProductionRequestFactory, SampleFactory

pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE = (dt.date.today() + dt.timedelta(days=40)).isoformat()


def request_yaml(**overrides) -> str:
    text = textwrap.dedent(
        f"""\
        experiment: dune
        physics_group: oscillations
        ticket: RITM0012345
        title: MCC5.0 oscillation samples
        description: For the MCC5.0 round.
        deadline: {DEADLINE}
        priority: high
        samples:
          - name: numu_fhc
            template: genie
            events: 10000
            events_per_job: 1000
            parameters: {{seed: 7}}
            output_dataset: dune:mcc5.0/numu_fhc
        """
    )
    for key, value in overrides.items():
        text = text.replace(key, value)
    return text


@pytest.fixture
def filed(dune):
    """Two DUNE requests: a draft with a sample and a submitted one."""
    draft = ProductionRequestFactory(
        experiment=dune.experiment,
        physics_group=dune.group,
        requester=dune.liaison,
        title="Supernova burst sample",
        ticket="RITM0000042",
    )
    SampleFactory(request=draft, template=dune.template, name="snb")
    submitted = ProductionRequestFactory(
        experiment=dune.experiment,
        physics_group=dune.group,
        requester=dune.liaison,
        title="Proton decay",
        state=RequestState.SUBMITTED,
    )
    return draft, submitted


def test_list_shows_a_table_and_json_parses(cli, live_server, filed):
    draft, submitted = filed
    cli.login(live_server.url)

    result = cli("requests", "list")
    assert result.code == 0, result.err
    header, *rows = result.out.splitlines()
    assert header.split() == [
        "NUMBER",
        "STATE",
        "EXPERIMENT",
        "GROUP",
        "DEADLINE",
        "PRIORITY",
        "TITLE",
    ]
    assert len(rows) == 2 and any(draft.number in row and "draft" in row for row in rows)

    data = cli("requests", "list", "--json").json()
    assert {r["number"] for r in data} == {draft.number, submitted.number}
    only = cli("requests", "list", "--state", "submitted", "--experiment", "dune", "--json").json()
    assert [r["number"] for r in only] == [submitted.number]
    assert cli("requests", "list", "--experiment", "sbnd").out.strip() == "No requests."


def test_show_by_number_with_history(cli, live_server, filed):
    draft, _ = filed
    cli.login(live_server.url)

    result = cli("requests", "show", draft.number, "--history")
    assert result.code == 0, result.err
    assert result.out.startswith(f"{draft.number}  Supernova burst sample")
    assert "ticket      RITM0000042" in result.out
    assert "snb" in result.out and "History" in result.out
    data = cli("requests", "show", draft.number, "--json").json()
    assert data["number"] == draft.number and data["samples"][0]["name"] == "snb"


def test_show_unknown_number_is_refused(cli, live_server, filed):
    cli.login(live_server.url)
    result = cli("requests", "show", "REQ-1999-0001")
    assert result.code == 1 and "no request REQ-1999-0001" in result.err


def test_create_from_yaml(cli, live_server, dune, tmp_path):
    cli.login(live_server.url)
    path = tmp_path / "request.yaml"
    path.write_text(request_yaml())

    result = cli("requests", "create", "-f", str(path), "--json")

    assert result.code == 0, result.err
    created = result.json()
    assert created["state"] == "draft" and created["priority"] == "high"
    request = ProductionRequest.objects.get(number=created["number"])
    assert request.requester == dune.liaison and request.samples.get().events == 10000

    submitted = cli("requests", "create", "-f", str(path), "--submit")
    assert submitted.code == 0, submitted.err
    assert "(submitted)" in submitted.out


def test_create_checks_the_file_before_sending(cli, live_server, dune, tmp_path):
    cli.login(live_server.url)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        request_yaml(
            **{
                "deadline: ": "dealine: ",
                "events: 10000": "events: ten thousand",
                "priority: high": "priority: urgent",
            }
        )
    )

    result = cli("requests", "create", "-f", str(bad))

    assert result.code == 2
    assert "nothing was sent" in result.err
    assert "unknown field 'dealine' (did you mean 'deadline'?)" in result.err
    assert "deadline: required" in result.err
    assert "samples[0].events: must be a whole number greater than zero" in result.err
    assert "priority: 'urgent' is not one of low, normal, high, critical" in result.err
    assert not ProductionRequest.objects.exists()


def test_invalid_yaml_and_missing_file_are_usage_errors(cli, live_server, dune, tmp_path):
    cli.login(live_server.url)
    broken = tmp_path / "broken.yaml"
    broken.write_text("experiment: dune\nsamples: [unclosed\n")
    result = cli("requests", "create", "-f", str(broken))
    assert result.code == 2 and "is not valid YAML at line" in result.err
    missing = cli("requests", "create", "-f", str(tmp_path / "nope.yaml"))
    assert missing.code == 2 and "cannot read" in missing.err
    dry = tmp_path / "ok.yaml"
    dry.write_text(request_yaml())
    assert cli("requests", "create", "-f", str(dry), "--dry-run").code == 0
    assert not ProductionRequest.objects.exists()


def test_server_refusal_of_a_created_request_is_exit_1_with_reasons(
    cli, live_server, dune, tmp_path
):
    cli.login(live_server.url)
    path = tmp_path / "request.yaml"
    path.write_text(request_yaml(**{"template: genie": "template: unknown-template"}))

    result = cli("requests", "create", "-f", str(path))

    assert result.code == 1
    assert "samples[0].template:" in result.err and "unknown workflow template" in result.err
    as_json = cli("requests", "create", "-f", str(path), "--json")
    assert as_json.code == 1 and as_json.json()["status"] == 400


def test_transition_and_refusals(cli, live_server, filed):
    draft, submitted = filed
    cli.login(live_server.url)

    result = cli("requests", "transition", draft.number, "submit")
    assert result.code == 0, result.err
    assert f"{draft.number}: submit done, now submitted." in result.out

    again = cli("requests", "transition", draft.number, "submit")  # 409: already submitted
    assert again.code == 1
    assert "Cannot submit: the request is submitted" in again.err
    assert "  - submit needs the state:" in again.err
    as_json = cli("requests", "transition", draft.number, "submit", "--json")
    assert as_json.code == 1
    assert as_json.json()["status"] == 409 and as_json.json()["reasons"]

    forbidden = cli("requests", "transition", submitted.number, "approve")  # 403: a liaison
    assert forbidden.code == 1 and "may not approve" in forbidden.err


def test_operator_transition_with_a_note(cli, live_server, filed):
    _, submitted = filed
    cli.login(live_server.url, username="op")
    no_note = cli("requests", "transition", submitted.number, "request_info")
    assert no_note.code == 1 and "A note is required" in no_note.err
    result = cli(
        "requests",
        "transition",
        submitted.number,
        "request_info",
        "--note",
        "Which tune?",
        "--json",
    )
    assert result.code == 0, result.err
    assert result.json()["state"] == "needs_info"
    assert ProductionRequest.objects.get(pk=submitted.pk).transitions.last().note == "Which tune?"


def test_unknown_action_is_a_usage_error(cli, live_server, filed):
    draft, _ = filed
    cli.login(live_server.url)
    result = cli("requests", "transition", draft.number, "approve-please")
    assert result.code == 2 and "invalid choice" in result.err
    assert ProductionRequest.objects.get(pk=draft.pk).state == RequestState.DRAFT


def test_json_output_of_every_request_command_parses(cli, live_server, filed, tmp_path):
    draft, _ = filed
    cli.login(live_server.url)
    path = tmp_path / "r.yaml"
    path.write_text(request_yaml())
    for args in (
        ("requests", "list"),
        ("requests", "show", draft.number, "--history"),
        ("requests", "create", "-f", str(path), "--dry-run"),
        ("requests", "create", "-f", str(path)),
        ("requests", "transition", draft.number, "cancel"),
        ("logout",),
    ):
        result = cli(*args, "--json")
        assert result.code == 0, (args, result.err)
        json.loads(result.out)


def test_show_finds_a_request_by_its_older_number(cli, live_server, filed):
    # Requests numbered before numbers were per experiment keep their REQ- numbers.
    draft, _ = filed
    ProductionRequest.objects.filter(pk=draft.pk).update(number="REQ-2025-0042")
    cli.login(live_server.url)
    result = cli("requests", "show", "REQ-2025-0042", "--json")
    assert result.code == 0, result.err
    assert result.json()["id"] == draft.pk

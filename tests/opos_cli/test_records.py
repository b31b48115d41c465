"""``opos code ...`` and ``opos templates ...`` against the live server: register code (with
a checksum or a file), import, export and clone templates, and every exit code."""

from __future__ import annotations

import hashlib

import pytest
import yaml

from experiments.models import AuditEvent, ProductionCode, WorkflowTemplate
from tests.campaigns.factories import approved_code, workflow
from tests.factories import ExperimentFactory

pytestmark = pytest.mark.django_db(transaction=True)

SHA = "b" * 64


def _register(cli, *extra: str):
    return cli(
        "code",
        "register",
        "--experiment",
        "dune",
        "--name",
        "genie_gen.sh",
        "--version",
        "1.2",
        "--location",
        "/cvmfs/dune/genie_gen.sh",
        *extra,
    )


def test_register_and_approve_code(cli, live_server, dune):
    cli.login(live_server.url, "op")
    result = _register(cli, "--sha256", SHA, "--owner", "liaison")
    assert result.code == 0, result.err
    assert result.out.startswith("genie_gen.sh 1.2 registered for dune (id ")
    code = ProductionCode.objects.get(name="genie_gen.sh")
    assert (code.sha256, code.approved) == (SHA, False)
    assert [o.username for o in code.owners.all()] == ["liaison"]

    approved = cli("code", "approve", str(code.pk), "--json")
    assert approved.code == 0, approved.err
    assert approved.json()["approved"] is True and approved.json()["approved_by"] == "op"
    assert AuditEvent.objects.filter(action__in=["register_code", "approve_code"]).count() == 2
    listed = cli("code", "list")
    assert listed.code == 0 and "genie_gen.sh" in listed.out and "yes" in listed.out


def test_register_with_a_file_checksums_it_on_the_server(cli, live_server, dune, tmp_path):
    script = tmp_path / "gen.sh"
    script.write_bytes(b"#!/bin/sh\necho gen\n")
    cli.login(live_server.url, "op")
    result = _register(cli, "--file", str(script), "--owner", "liaison", "--approve", "--json")
    assert result.code == 0, result.err
    expected = hashlib.sha256(script.read_bytes()).hexdigest()
    assert result.json()["sha256"] == expected and result.json()["approved"] is True

    # A checksum that does not match the file: refused by the server, field named, exit 1.
    wrong = cli(
        "code", "register", "-e", "dune", "--name", "x.sh", "--version", "1",
        "--location", "/x", "--file", str(script), "--sha256", SHA,
    )  # fmt: skip
    assert wrong.code == 1
    assert "sha256: does not match the uploaded file" in wrong.err
    assert not ProductionCode.objects.filter(name="x.sh").exists()


def test_register_refusals_and_usage_errors(cli, live_server, dune, tmp_path):
    cli.login(live_server.url, "op")
    refused = _register(cli, "--sha256", "xyz", "--owner", "outsider", "--json")
    assert refused.code == 1
    reasons = refused.json()["reasons"]
    assert any(r.startswith("sha256:") for r in reasons)
    assert any(r.startswith("owners: not liaisons of DUNE: outsider") for r in reasons)
    missing = _register(cli, "--file", str(tmp_path / "nope.sh"))
    assert missing.code == 2 and "cannot read" in missing.err
    assert cli("code", "register", "--name", "x").code == 2  # argparse: required options
    assert not ProductionCode.objects.filter(name="genie_gen.sh").exists()


def test_only_operators_register_code(cli, live_server, dune):
    cli.login(live_server.url, "liaison")
    result = _register(cli, "--sha256", SHA)
    assert result.code == 1
    assert "Only OPOS operators" in result.err
    assert not ProductionCode.objects.filter(name="genie_gen.sh").exists()


def test_export_import_and_clone_templates(cli, live_server, dune, tmp_path):
    template = workflow(dune.experiment, name="gen-sim-reco")
    ExperimentFactory(slug="sbnd", name="SBND")
    cli.login(live_server.url, "op")

    exported = cli("templates", "export", "gen-sim-reco")
    assert exported.code == 0, exported.err
    document = yaml.safe_load(exported.out)
    assert document["name"] == "gen-sim-reco" and len(document["stages"]) == 3
    target = tmp_path / "t.yaml"
    written = cli("templates", "export", str(template.pk), "-o", str(target))
    assert written.code == 0 and target.read_text() == exported.out

    target.write_text(exported.out.replace("version: 1\n", "version: 2\n"))
    imported = cli("templates", "import", str(target), "--experiment", "dune")
    assert imported.code == 0, imported.err
    assert imported.out.startswith("Imported gen-sim-reco v2 (dune, id ")
    # The latest version is what a name means from now on.
    latest = cli("templates", "export", "gen-sim-reco", "--json")
    assert latest.code == 0 and "version: 2" in latest.json()["document"]

    cloned = cli("templates", "clone", "gen-sim-reco", "--version", "1", "--into", "sbnd")
    assert cloned.code == 0, cloned.err
    assert cloned.out.startswith("Cloned into gen-sim-reco v1 (sbnd, id ")
    assert cloned.out.count("warning: stage") == 3
    clone = WorkflowTemplate.objects.get(experiment__slug="sbnd")
    assert clone.cloned_from == template
    assert AuditEvent.objects.filter(action__in=["import_template", "clone_template"]).count() == 2


def test_template_refusals_and_usage_errors(cli, live_server, dune, tmp_path):
    approved_code(dune.experiment, name="gen.sh", version="1")
    cli.login(live_server.url, "op")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: chain\nstages:\n  - name: gen\n    code: {name: gen.sh, version: '9'}\n")
    refused = cli("templates", "import", str(bad), "-e", "dune", "--json")
    assert refused.code == 1
    assert refused.json()["error"] == "The template is not valid."
    assert refused.json()["reasons"] == [
        "line 4: stages[0].code: gen.sh 9 is not registered for dune"
    ]
    assert cli("templates", "import", str(tmp_path / "none.yaml")).code == 2
    unknown = cli("templates", "export", "no-such-template")
    assert unknown.code == 1 and "no workflow template 'no-such-template'" in unknown.err
    clone_to_nowhere = cli("templates", "clone", "genie", "--into", "nope")
    assert clone_to_nowhere.code == 1
    assert "experiment: Object with slug=nope does not exist." in clone_to_nowhere.err
    assert WorkflowTemplate.objects.count() == 1  # only the fixture's genie

    cli.login(live_server.url, "liaison")
    bad.write_text("name: chain\nstages:\n  - name: gen\n    code: {name: gen.sh, version: '1'}\n")
    forbidden = cli("templates", "import", str(bad), "-e", "dune")
    assert forbidden.code == 1 and "Only OPOS operators" in forbidden.err
    assert WorkflowTemplate.objects.count() == 1


def test_without_a_server_the_exit_code_is_3(cli, closed_port_url, monkeypatch):
    result = cli(
        "templates", "export", "genie", env={"OPOS_URL": closed_port_url, "OPOS_TOKEN": "x"}
    )
    assert result.code == 3 and "cannot reach" in result.err

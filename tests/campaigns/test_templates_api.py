"""``/api/v1/templates/``: create, import, clone and export over the API, through the same
services as the browser pages: the same checks, the same audit, nothing half-written."""

from __future__ import annotations

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile

from campaigns.models import FailureRule
from experiments.models import AuditEvent, StageTemplate, WorkflowTemplate
from tests.campaigns.factories import approved_code, workflow
from tests.factories import ExperimentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def gen(experiment):
    return approved_code(experiment, name="gen.sh", version="2.0")


def _document(gen, **overrides) -> dict:
    return {
        "name": "mc-chain",
        "version": 1,
        "description": "generation then simulation",
        "stages": [
            {"name": "gen", "code": {"name": gen.name, "version": gen.version}},
            {
                "name": "sim",
                "code": {"name": gen.name, "version": gen.version},
                "split": "files",
                "files_per_job": 2,
                "input_stage": "gen",
                "memory_mb": 4000,
            },
        ],
        **overrides,
    }


def test_an_operator_creates_a_template_from_json(api, operator, experiment, gen):
    body = {"experiment": "dune", **_document(gen)}
    answer = api(operator).post("/api/v1/templates/", body, format="json")

    assert answer.status_code == 201, answer.json()
    created = answer.json()
    assert (created["experiment"], created["name"], created["version"]) == ("dune", "mc-chain", 1)
    assert [s["name"] for s in created["stages"]] == ["gen", "sim"]
    assert created["stages"][1]["input_stage"] == "gen"
    assert created["stages"][1]["memory_mb"] == 4000
    event = AuditEvent.objects.get(action="create_template")
    assert event.actor == operator and event.experiment == experiment
    assert event.data == {"template": created["id"], "stages": ["gen", "sim"], "failure_rules": 0}


def test_a_bad_template_is_refused_naming_every_field_and_nothing_is_written(
    api, operator, experiment, gen
):
    document = _document(gen)
    document["stages"][1].update(cores=0, input_stage="reco", colour="red")
    document["stages"][0]["code"] = {"name": "missing.sh", "version": "1"}
    body = {"experiment": "dune", **document, "owner": "me"}
    answer = api(operator).post("/api/v1/templates/", body, format="json")

    assert answer.status_code == 400
    reasons = answer.json()["reasons"]
    assert answer.json()["detail"] == "The template is not valid."
    for expected in (
        "owner: unknown field",
        "stages[0].code: missing.sh 1 is not registered for dune",
        "stages[1].cores: a whole number from 1 to 32767 is required",
        "stages[1].colour: unknown field",
        "stages[1].input_stage: no stage is named 'reco'",
    ):
        assert any(r.startswith(expected) for r in reasons), (expected, reasons)
    assert not WorkflowTemplate.objects.filter(name="mc-chain").exists()
    assert not StageTemplate.objects.filter(name="sim").exists()
    assert not AuditEvent.objects.filter(action="create_template").exists()


def test_unknown_experiment_is_refused_by_name(api, operator, gen):
    body = {"experiment": "nope", **_document(gen)}
    answer = api(operator).post("/api/v1/templates/", body, format="json")
    assert answer.status_code == 400
    assert "does not exist" in answer.json()["experiment"][0]


def test_export_then_import_elsewhere(api, operator, experiment, gen):
    template = workflow(experiment, name="gen-sim-reco")
    exported = api(operator).get(f"/api/v1/templates/{template.pk}/export/")
    assert exported.status_code == 200
    assert exported.json()["filename"] == "gen-sim-reco-v1.yaml"
    document = exported.json()["document"]
    assert yaml.safe_load(document)["name"] == "gen-sim-reco"

    # As the next version (JSON), then as a file (multipart) as a further version.
    bumped = document.replace("version: 1\n", "version: 2\n")
    imported = api(operator).post(
        "/api/v1/templates/import/", {"experiment": "dune", "document": bumped}, format="json"
    )
    assert imported.status_code == 201, imported.json()
    assert imported.json()["version"] == 2 and len(imported.json()["stages"]) == 3
    upload = SimpleUploadedFile("t.yaml", document.replace("version: 1\n", "version: 3\n").encode())
    as_file = api(operator).post(
        "/api/v1/templates/import/", {"experiment": "dune", "file": upload}, format="multipart"
    )
    assert as_file.status_code == 201, as_file.json()
    assert AuditEvent.objects.filter(action="import_template").count() == 2

    # The same version again: refused by name, nothing added.
    again = api(operator).post(
        "/api/v1/templates/import/", {"experiment": "dune", "document": bumped}, format="json"
    )
    assert again.status_code == 400
    assert again.json()["reasons"][0].startswith("version: gen-sim-reco v2 already exists")
    assert WorkflowTemplate.objects.filter(name="gen-sim-reco").count() == 3


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ("name: [unclosed", "line 1, column"),
        ("- a list\n", "the document must be a mapping"),
        ("name: x\nstages:\n  - name: a\n    cores: -1\n", "line 4: stages[0].cores"),
    ],
)
def test_a_bad_yaml_document_is_refused_with_its_line(api, operator, experiment, document, reason):
    answer = api(operator).post(
        "/api/v1/templates/import/", {"experiment": "dune", "document": document}, format="json"
    )
    assert answer.status_code == 400
    assert any(reason in r for r in answer.json()["reasons"]), answer.json()
    assert not WorkflowTemplate.objects.exists()


def test_an_import_without_a_document_names_the_field(api, operator, experiment):
    answer = api(operator).post("/api/v1/templates/import/", {"experiment": "dune"}, format="json")
    assert answer.status_code == 400
    assert answer.json()["document"] == ["give the YAML document or a file"]


def test_clone_into_another_experiment_with_warnings(api, operator, experiment):
    sbnd = ExperimentFactory(slug="sbnd", name="SBND")
    template = workflow(experiment, name="gen-sim-reco")
    answer = api(operator).post(
        f"/api/v1/templates/{template.pk}/clone/", {"experiment": "sbnd"}, format="json"
    )

    assert answer.status_code == 201, answer.json()
    clone = answer.json()["template"]
    assert (clone["experiment"], clone["name"], clone["version"]) == ("sbnd", "gen-sim-reco", 1)
    assert clone["cloned_from"] == template.pk
    assert len(answer.json()["warnings"]) == 3
    assert "not registered for sbnd" in answer.json()["warnings"][0]
    event = AuditEvent.objects.get(action="clone_template")
    assert event.experiment == sbnd and event.data["cloned_from"] == template.pk

    bad = api(operator).post(
        f"/api/v1/templates/{template.pk}/clone/",
        {"experiment": "sbnd", "name": "x" * 121},
        format="json",
    )
    assert bad.status_code == 400 and "name" in bad.json()
    assert WorkflowTemplate.objects.filter(experiment=sbnd).count() == 1


def test_only_operators_write_templates(api, liaison, physicist, experiment, gen):
    template = workflow(experiment)
    for user in (liaison, physicist):
        client = api(user)
        refused = [
            client.post("/api/v1/templates/", {"experiment": "dune", **_document(gen)}, "json"),
            client.post("/api/v1/templates/import/", {"document": "name: x"}, "json"),
            client.post(f"/api/v1/templates/{template.pk}/clone/", {"experiment": "dune"}, "json"),
        ]
        assert [r.status_code for r in refused] == [403, 403, 403]
        assert "Only OPOS operators" in refused[0].json()["detail"]
        # Reading and exporting stay open to whoever may see the template.
        assert client.get(f"/api/v1/templates/{template.pk}/export/").status_code == 200
    assert api().post("/api/v1/templates/import/", {}, format="json").status_code == 401
    assert WorkflowTemplate.objects.count() == 1


def test_another_experiments_template_cannot_be_exported(api, other_liaison, experiment):
    template = workflow(experiment)
    assert api(other_liaison).get(f"/api/v1/templates/{template.pk}/export/").status_code == 404


def test_failure_rules_travel_with_the_template(api, operator, experiment, gen):
    template = workflow(experiment, name="gen-sim-reco")
    FailureRule.objects.create(
        template=template,
        position=1,
        exit_codes=[17],
        failure_class="other",
        action="more_walltime",
        factor=2.0,
        description="slow site",
    )
    exported = api(operator).get(f"/api/v1/templates/{template.pk}/export/").json()["document"]
    assert yaml.safe_load(exported)["failure_rules"] == [
        {
            "position": 1,
            "exit_codes": [17],
            "failure_class": "other",
            "action": "more_walltime",
            "factor": 2.0,
            "description": "slow site",
        }
    ]
    imported = api(operator).post(
        "/api/v1/templates/import/",
        {"experiment": "dune", "document": exported.replace("version: 1\n", "version: 2\n")},
        format="json",
    )
    assert imported.status_code == 201, imported.json()
    copy = FailureRule.objects.get(template_id=imported.json()["id"])
    assert (copy.exit_codes, copy.action, copy.factor) == ([17], "more_walltime", 2.0)
    assert AuditEvent.objects.get(action="import_template").data["failure_rules"] == 1

    cloned = api(operator).post(
        f"/api/v1/templates/{template.pk}/clone/", {"experiment": "dune"}, format="json"
    )
    assert cloned.status_code == 201
    clone_rule = FailureRule.objects.get(template_id=cloned.json()["template"]["id"])
    assert clone_rule.description == "slow site"


def test_bad_failure_rules_are_refused_by_field_and_nothing_is_written(
    api, operator, experiment, gen
):
    rules = [
        {"failure_class": "other", "action": "retry"},
        {"exit_codes": [1], "failure_class": "other", "action": "retry", "factor": "fast"},
        {"exit_codes": [999], "failure_class": "other", "action": "pray", "colour": "red"},
        "retry",
    ]
    body = {"experiment": "dune", **_document(gen), "failure_rules": rules}
    answer = api(operator).post("/api/v1/templates/", body, format="json")

    assert answer.status_code == 400
    reasons = answer.json()["reasons"]
    for expected in (
        "failure_rules[0]: A rule needs an exit code",
        "failure_rules[1].factor:",
        "failure_rules[2].colour: unknown field",
        "failure_rules[2].action:",
        "failure_rules[3]: each rule must be a mapping",
    ):
        assert any(r.startswith(expected) for r in reasons), (expected, reasons)
    assert not WorkflowTemplate.objects.filter(name="mc-chain").exists()
    assert not FailureRule.objects.exists()


def test_a_nul_in_an_imported_rule_is_refused_by_name(api, operator, experiment, gen):
    document = (
        "name: chain\n"
        f"stages:\n  - name: gen\n    code: {{name: {gen.name}, version: '{gen.version}'}}\n"
        "failure_rules:\n  - {exit_codes: [1], failure_class: other, action: retry,"
        ' stderr_pattern: "a\\0b"}\n'
    )
    answer = api(operator).post(
        "/api/v1/templates/import/", {"experiment": "dune", "document": document}, format="json"
    )
    assert answer.status_code == 400, answer.json()
    assert answer.json()["reasons"] == [
        "line 6: failure_rules[0].stderr_pattern: NUL characters are not allowed"
    ]
    assert not WorkflowTemplate.objects.filter(name="chain").exists()

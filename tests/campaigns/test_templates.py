"""Workflow templates: cycle detection, clone into an experiment, YAML export and import."""

import pytest

from campaigns.services import (
    CampaignError,
    clone_template,
    export_template,
    find_cycle,
    import_template,
    parse_template,
)
from experiments.models import SplitRule, WorkflowTemplate
from tests.campaigns.factories import approved_code, workflow
from tests.factories import ExperimentFactory

pytestmark = pytest.mark.django_db


def test_find_cycle():
    assert find_cycle({"gen": None, "sim": "gen", "reco": "sim"}) is None
    assert find_cycle({"a": "c", "b": "a", "c": "b"}) == ["a", "c", "b", "a"]
    assert find_cycle({"a": "a"}) == ["a", "a"]
    assert find_cycle({"x": None, "a": "b", "b": "a"}) in (["a", "b", "a"], ["b", "a", "b"])
    assert find_cycle({"a": "missing"}) is None


def test_clone_a_shared_template_into_an_experiment(operator, experiment):
    sbnd = ExperimentFactory(slug="sbnd")
    shared = workflow(sbnd, name="gen-sim-reco")
    shared.experiment = None
    shared.description = "the standard chain"
    shared.save()
    # DUNE registered its own copy of the generator under the same name and version.
    gen_code = shared.stages.get(position=0).code
    own_gen = approved_code(experiment, name=gen_code.name, version=gen_code.version)

    clone, warnings = clone_template(shared, experiment, operator)

    assert (clone.experiment, clone.name, clone.version) == (experiment, "gen-sim-reco", 1)
    assert clone.cloned_from == shared and clone.description == "the standard chain"
    stages = list(clone.stages.order_by("position"))
    assert [s.name for s in stages] == ["generation", "simulation", "reconstruction"]
    assert stages[0].code == own_gen
    assert stages[1].input_stage == stages[0] and stages[2].input_stage == stages[1]
    assert stages[2].files_per_job == 2 and stages[2].split == SplitRule.FILES
    # The other two stages still point at SBND's code: the operator is told.
    assert len(warnings) == 2
    assert "stage simulation" in warnings[0] and "not registered for dune" in warnings[0]
    # Cloning again makes the next version; the original is untouched.
    again, _ = clone_template(shared, experiment, operator)
    assert again.version == 2
    assert shared.stages.count() == 3


def test_only_operators_clone_and_import(liaison, experiment):
    template = workflow(experiment)
    with pytest.raises(CampaignError) as info:
        clone_template(template, experiment, liaison)
    assert info.value.kind == "forbidden"
    with pytest.raises(CampaignError):
        import_template(export_template(template), experiment, liaison)


def test_export_then_import_round_trip(operator, experiment):
    template = workflow(experiment, name="chain")
    text = export_template(template)
    assert text.startswith("# OPOS workflow template chain v1 (dune)")
    assert "input_stage: generation" in text and "files_per_job: 2" in text

    imported = import_template(text.replace("version: 1", "version: 5"), experiment, operator)

    assert (imported.name, imported.version, imported.experiment) == ("chain", 5, experiment)
    original = list(template.stages.order_by("position"))
    copy = list(imported.stages.order_by("position"))
    for a, b in zip(original, copy, strict=True):
        assert (a.name, a.code_id, a.parameters, a.split, a.files_per_job, a.walltime_s) == (
            b.name,
            b.code_id,
            b.parameters,
            b.split,
            b.files_per_job,
            b.walltime_s,
        )
    assert copy[2].input_stage == copy[1]


def test_import_refuses_an_existing_version(operator, experiment):
    template = workflow(experiment, name="chain")
    with pytest.raises(CampaignError) as info:
        import_template(export_template(template), experiment, operator)
    assert info.value.reasons == ["version: chain v1 already exists in dune; give a higher version"]


def problems(text, experiment):
    with pytest.raises(CampaignError) as info:
        parse_template(text, experiment)
    return info.value.reasons


def test_import_errors_name_the_line_and_field(experiment):
    code = approved_code(experiment, name="gen", version="1.0")
    text = f"""name: broken
version: zero
stages:
  - name: generation
    code: {{name: gen, version: "1.0", sha256: "{"0" * 64}"}}
    cores: -1
    split: events
  - name: simulation
    code: {{name: sim, version: "2.0"}}
    split: files
    input_stage: nowhere
    colour: blue
"""
    found = problems(text, experiment)
    assert "line 2: version: a whole number from 1 to 2147483647 is required" in found
    assert (
        f"line 5: stages[0].code.sha256: does not match the registered gen 1.0 "
        f"({code.sha256[:12]}...)" in found
    )
    assert "line 6: stages[0].cores: a whole number from 1 to 32767 is required" in found
    assert "line 9: stages[1].code: sim 2.0 is not registered for dune" in found
    # Missing fields point at the start of their stage.
    assert "line 8: stages[1].files_per_job: required when split is files" in found
    assert "line 11: stages[1].input_stage: no stage is named 'nowhere'" in found
    assert any(p.startswith("line 12: stages[1].colour: unknown field") for p in found)
    assert not WorkflowTemplate.objects.filter(name="broken").exists()


def test_import_detects_cycles(experiment):
    approved_code(experiment, name="gen", version="1.0")
    text = """name: loop
stages:
  - {name: a, code: {name: gen, version: "1.0"}, input_stage: c, split: files, files_per_job: 1}
  - {name: b, code: {name: gen, version: "1.0"}, input_stage: a, split: files, files_per_job: 1}
  - {name: c, code: {name: gen, version: "1.0"}, input_stage: b, split: files, files_per_job: 1}
"""
    found = problems(text, experiment)
    assert any("input_stage links form a cycle: a -> c -> b -> a" in p for p in found)
    text = """name: self
stages:
  - {name: a, code: {name: gen, version: "1.0"}, input_stage: a}
"""
    assert "line 3: stages[0].input_stage: a stage cannot read its own output" in problems(
        text, experiment
    )


def test_import_reports_yaml_syntax_with_its_position(experiment):
    found = problems("name: x\nstages: [\n  - a\n", experiment)
    assert found[0].startswith("line ")
    assert "column" in found[0]
    assert problems("- just\n- a list\n", experiment) == ["the document must be a mapping"]
    assert problems("name: x\nname: y\nstages: []\n", experiment)[0] == "line 2: name: given twice"


def test_import_validates_parameter_specs(experiment):
    approved_code(experiment, name="gen", version="1.0")
    text = """name: params
stages:
  - name: generation
    code: {name: gen, version: "1.0"}
    parameters:
      seed: {type: integer}
"""
    found = problems(text, experiment)
    assert found == [
        "line 5: stages[0].parameters: seed: type must be one of int, float, str, bool"
    ]


def test_shared_templates_name_each_code_experiment(operator, experiment):
    approved_code(experiment, name="gen", version="1.0")
    text = """name: shared-chain
stages:
  - {name: generation, code: {name: gen, version: "1.0"}}
"""
    assert problems(text, None) == [
        "line 3: stages[0].code.experiment: required for a shared template (whose code is it?)"
    ]
    shared = import_template(text.replace('"1.0"}', '"1.0", experiment: dune}'), None, operator)
    assert shared.experiment is None

"""The job wrapper: refuses changed code, passes parameters as data only, writes the manifest."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from campaigns.choices import FailureClass, JobState
from campaigns.execution import descriptions
from campaigns.execution.wrapper import (
    ARRAY_FILE,
    EXIT_BAD_JOB,
    EXIT_CODE_MISMATCH,
    JOB_FILE,
    JOBS_FILE,
    MANIFEST_FILE,
    SPEC_FILE,
    catalogue_name,
    load_description,
)
from campaigns.models import Job, OutputFile, Stage
from tests.campaigns.exec_support import (
    DEMO_STAGES,
    all_final,
    demo_template,
    launch,
    run_until,
)

ROOT = Path(settings.BASE_DIR)

ECHO_SCRIPT = """\
import json, pathlib
job = json.loads(pathlib.Path("job.json").read_text())
out = pathlib.Path("output")
out.mkdir(exist_ok=True)
(out / "params.json").write_text(json.dumps(job["parameters"], sort_keys=True))
(pathlib.Path("ran")).write_text("yes")
"""


def run_wrapper(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "campaigns.execution.wrapper"],
        cwd=folder,
        env={**os.environ, "OPOS_JOB_DIR": str(folder), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def job_folder(tmp_path: Path, script: Path, sha: str, **extra) -> Path:
    folder = tmp_path / "element"
    folder.mkdir()
    job = {"index": 7, "events": 5, "parameters": {}, "code": {"path": str(script), "sha256": sha}}
    (folder / SPEC_FILE).write_text(json.dumps({**job, **extra}))
    return folder


def array_folder(tmp_path: Path, script: Path, lines: list[dict]) -> Path:
    """An array folder as prepare writes it: the shared part and one line per element."""
    array = tmp_path / "array"
    array.mkdir()
    common = {
        "campaign": 3,
        "stage": "generation",
        "stage_id": 9,
        "parameters": {"seed": 4},
        "output_dataset": "mc:gen",
        "code": {"path": str(script), "sha256": hashlib.sha256(script.read_bytes()).hexdigest()},
        "resources": {"cores": 1, "memory_mb": 500, "walltime_s": 60},
    }
    (array / ARRAY_FILE).write_text(json.dumps(common))
    (array / JOBS_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))
    return array


def line(n: int) -> dict:
    return {
        "job": 100 + n,
        "index": n,
        "attempt": 1,
        "events": 10,
        "first_event": 10 * n,
        "inputs": [f"/data/in_{n}.root"],
        "input_files": [],
    }


def test_wrapper_reads_its_line_of_the_array_and_gives_the_code_the_same_job_json(tmp_path):
    script = tmp_path / "code.py"
    script.write_text(ECHO_SCRIPT)
    array = array_folder(tmp_path, script, [line(n) for n in range(5)])
    folder = array / "3"  # made by the job shim when element 3 starts
    folder.mkdir()

    done = run_wrapper(folder)

    assert done.returncode == 0, done.stderr
    job = json.loads((folder / JOB_FILE).read_text())
    common = json.loads((array / ARRAY_FILE).read_text())
    # Exactly what a per-element description of the same job gave the code before.
    expected = {k: v for k, v in {**common, **line(3)}.items() if k != "code"}
    assert job == {**expected, "output_dir": "output"}
    assert json.loads((folder / "output" / "params.json").read_text()) == {"seed": 4}
    [entry] = json.loads((folder / MANIFEST_FILE).read_text())["files"]
    assert entry["name"] == "params_000003.json"


def test_an_element_folder_with_its_own_description_still_runs(tmp_path):
    # Jobs submitted by an earlier version have opos-job.json in their folder.
    script = tmp_path / "code.py"
    script.write_text(ECHO_SCRIPT)
    array = array_folder(tmp_path, script, [line(0)])
    folder = array / "0"
    folder.mkdir()
    own = {**line(0), "index": 42, "code": {"path": str(script), "sha256": "0" * 64}}
    (folder / SPEC_FILE).write_text(json.dumps(own))
    assert load_description(folder)["index"] == 42


@pytest.mark.parametrize("element", ["5", "notanumber"])
def test_an_element_without_a_line_is_refused(tmp_path, element):
    script = tmp_path / "code.py"
    script.write_text(ECHO_SCRIPT)
    folder = array_folder(tmp_path, script, [line(n) for n in range(5)]) / element
    folder.mkdir()

    done = run_wrapper(folder)

    assert done.returncode == EXIT_BAD_JOB
    assert "opos-wrapper: refusing the job description" in done.stderr
    assert not (folder / "ran").exists()


def test_description_parts_merge_into_the_whole_description(exec_env, tmp_path):
    # The split into array.json + jobs.jsonl loses nothing of job_description().
    class FakeStage:
        campaign_id, name, pk, parameters = 3, "gen", 9, {"seed": 1}
        output_dataset_id, code_location, code_sha256 = None, "/c.py", "ab" * 32
        cores, memory_mb, walltime_s = 2, 800, 90

    row = {
        "id": 5,
        "index": 1,
        "attempt": 2,
        "events": 10,
        "events_first": 10,
        "input_files": ["f"],
        "memory_mb": None,
        "walltime_s": 120,
    }
    whole = descriptions.job_description(FakeStage, row, ["/in/f"])
    parts = {
        **descriptions.common_description(FakeStage, None, 120),
        **descriptions.element_description(row, ["/in/f"]),
    }
    assert parts == whole
    assert whole["resources"] == {"cores": 2, "memory_mb": 800, "walltime_s": 120}
    # The hand-formatted line of jobs.jsonl decodes to the element's fields, whatever the
    # characters of its paths.
    odd = ['/in/"quoted"\\ and\nnewline ☃']
    text = descriptions.element_line({**row, "input_files": odd}, odd)
    assert text.endswith("\n") and text.count("\n") == 1
    assert json.loads(text) == descriptions.element_description({**row, "input_files": odd}, odd)
    with pytest.raises((TypeError, ValueError)):
        descriptions.element_line({**row, "events": None}, [])


def test_wrapper_refuses_a_script_whose_checksum_changed(tmp_path):
    script = tmp_path / "code.py"
    script.write_text(ECHO_SCRIPT)
    registered = hashlib.sha256(script.read_bytes()).hexdigest()
    script.write_text(ECHO_SCRIPT + "\nprint('tampered')\n")  # changed after approval
    folder = job_folder(tmp_path, script, registered)

    done = run_wrapper(folder)

    assert done.returncode == EXIT_CODE_MISMATCH
    assert "opos-wrapper: refusing to run" in done.stderr
    assert registered in done.stderr
    assert not (folder / "ran").exists()  # the code never ran
    assert not (folder / MANIFEST_FILE).exists()


@pytest.mark.parametrize(
    "parameters",
    [{"nested": {"a": 1}}, {"list": [1, 2]}, {"bad name": 1}, {"nan": float("inf")}],
)
def test_wrapper_refuses_parameters_that_are_not_named_scalars(tmp_path, parameters):
    script = tmp_path / "code.py"
    script.write_text(ECHO_SCRIPT)
    sha = hashlib.sha256(script.read_bytes()).hexdigest()
    folder = job_folder(tmp_path, script, sha)
    spec = json.loads((folder / SPEC_FILE).read_text())
    (folder / SPEC_FILE).write_text(json.dumps({**spec, "parameters": parameters}))

    done = run_wrapper(folder)

    assert done.returncode == EXIT_BAD_JOB
    assert "opos-wrapper: refusing the job description" in done.stderr
    assert not (folder / "ran").exists()


def test_wrapper_runs_verified_code_and_writes_the_manifest(tmp_path):
    script = tmp_path / "code.py"
    script.write_text(ECHO_SCRIPT)
    folder = job_folder(tmp_path, script, hashlib.sha256(script.read_bytes()).hexdigest())

    done = run_wrapper(folder)

    assert done.returncode == 0, done.stderr
    job = json.loads((folder / JOB_FILE).read_text())  # what the code was given
    assert (job["index"], job["events"], job["output_dir"]) == (7, 5, "output")
    assert "code" not in job
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["exit_code"] == 0 and manifest["finished"] >= manifest["started"]
    [entry] = manifest["files"]
    data = (folder / "output" / "params.json").read_bytes()
    assert entry == {
        "name": catalogue_name("params.json", 7),
        "path": "output/params.json",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "events": 5,
    }
    assert entry["name"] == "params_000007.json"


@pytest.mark.django_db(transaction=True)
def test_changed_script_fails_the_job_as_code_mismatch_and_is_not_retried(
    exec_env,
    experiment,
    operator,
    tmp_path,
):
    script = tmp_path / "generate.py"
    script.write_text((ROOT / "demo" / "workflow" / "generate.py").read_text())
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    campaign, _request = launch(experiment, operator, events=200, per_job=100, template=template)
    with script.open("a") as fh:  # someone edits the approved script after planning
        fh.write("\nimport os  # changed\n")

    run_until(lambda: all_final(stage__campaign=campaign))

    jobs = list(Job.objects.filter(stage__campaign=campaign))
    assert len(jobs) == 2  # one attempt each: a mismatch is never retried
    for job in jobs:
        assert job.state == JobState.FAILED
        assert job.failure_class == FailureClass.CODE_MISMATCH
        assert "refusing to run" in job.failure_reason
        assert job.exit_code == EXIT_CODE_MISMATCH
    assert not OutputFile.objects.exists()


HOSTILE = {
    "label": "$(touch pwned1); `touch pwned2` | touch pwned3 && touch pwned4 > x",
    "quote": '\'"; touch pwned5; echo "',
    "newline": "a\ntouch pwned6\n",
    "glob": "* ? [a-z] ~ %s %a %j",
    "unicode": "Żółw ☃ \u202e",
}


@pytest.mark.django_db(transaction=True)
def test_parameters_with_shell_metacharacters_arrive_unchanged_and_run_nothing(
    exec_env,
    experiment,
    operator,
    tmp_path,
):
    script = tmp_path / "echo.py"
    script.write_text(ECHO_SCRIPT)
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    campaign, _request = launch(experiment, operator, events=100, per_job=100, template=template)
    # Validation refuses such strings at intake; the execution side must be safe even so.
    Stage.objects.filter(campaign=campaign).update(parameters=HOSTILE)

    run_until(lambda: all_final(stage__campaign=campaign))

    job = Job.objects.get(stage__campaign=campaign)
    assert job.state == JobState.SUCCEEDED, job.failure_reason
    folder = Path(job.workdir)
    assert not (folder / SPEC_FILE).exists()  # the array's files describe it
    assert json.loads((folder.parent / ARRAY_FILE).read_text())["parameters"] == HOSTILE
    assert load_description(folder)["parameters"] == HOSTILE
    assert json.loads((folder / JOB_FILE).read_text())["parameters"] == HOSTILE
    assert json.loads((folder / "output" / "params.json").read_text()) == HOSTILE
    pwned = [p for p in exec_env.rglob("pwned*")] + list(ROOT.glob("pwned*"))
    assert pwned == []

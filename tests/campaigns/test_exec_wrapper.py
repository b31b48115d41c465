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
from campaigns.execution.wrapper import (
    EXIT_BAD_JOB,
    EXIT_CODE_MISMATCH,
    JOB_FILE,
    MANIFEST_FILE,
    SPEC_FILE,
    catalogue_name,
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
    assert json.loads((folder / SPEC_FILE).read_text())["parameters"] == HOSTILE
    assert json.loads((folder / JOB_FILE).read_text())["parameters"] == HOSTILE
    assert json.loads((folder / "output" / "params.json").read_text()) == HOSTILE
    pwned = [p for p in exec_env.rglob("pwned*")] + list(ROOT.glob("pwned*"))
    assert pwned == []

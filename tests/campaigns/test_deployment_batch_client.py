"""The worker container's entrypoint (scripts/deploy/batch-client.sh) and the publishing of
the job wrapper for batch nodes that cannot see the image: run here against the test
Slurm cluster, as the container runs them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from campaigns.execution import backends
from campaigns.management.commands.publish_job_wrapper import WRAPPER_FILES
from tests.parallel import slurm_in_use

ENTRYPOINT = Path(settings.BASE_DIR) / "scripts" / "deploy" / "batch-client.sh"


BATCH_VARIABLES = ("SLURM_CONF", "MUNGE_KEY_FILE", "CONDOR_CONFIG", "OPOS_JOB_CODE_DIR")


def run_entrypoint(env: dict[str, str], *command: str) -> subprocess.CompletedProcess:
    # The image's PATH starts with its virtualenv; here, this interpreter's.
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    # Only the batch systems the test names: another test of this process may have left,
    # say, CONDOR_CONFIG in the environment.
    inherited = {k: v for k, v in os.environ.items() if k not in BATCH_VARIABLES}
    return subprocess.run(
        [str(ENTRYPOINT), *command],
        env={**inherited, "PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def slurm_conf() -> str:
    """The test cluster's configuration (the default place when SLURM_CONF is unset)."""
    return os.environ.get("SLURM_CONF") or "/etc/slurm/slurm.conf"


def test_the_wrapper_published_is_what_the_jobs_import(tmp_path, settings):
    target = tmp_path / "shared" / "opos-code"
    call_command("publish_job_wrapper", "--to", str(target))
    for name in WRAPPER_FILES:
        assert (target / name).read_bytes() == (Path(settings.BASE_DIR) / name).read_bytes()
        assert (target / name).stat().st_mode & 0o777 == 0o644
    settings.OPOS_JOB_CODE_DIR = str(target)
    env = backends.job_environment()
    assert env == {"PYTHONPATH": str(target)}
    # What a batch node does (-S: no site-packages, where this machine's venv points at the
    # project): it imports the published wrapper, from a folder of its own.
    found = subprocess.run(
        [sys.executable, "-S", "-c", "import campaigns.execution.wrapper as w; print(w.__file__)"],
        env={"PYTHONPATH": env["PYTHONPATH"], "PATH": os.environ["PATH"]},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.strip() == str(target / "campaigns" / "execution" / "wrapper.py")
    call_command("publish_job_wrapper", "--to", str(target))  # again: the same, no leftovers
    assert not list(target.rglob("*.part"))


def test_publishing_without_a_folder_says_what_to_set(settings):
    settings.OPOS_JOB_CODE_DIR = ""
    with pytest.raises(CommandError, match="set OPOS_JOB_CODE_DIR"):
        call_command("publish_job_wrapper")
    with pytest.raises(CommandError, match="absolute path"):
        call_command("publish_job_wrapper", "--to", "relative/folder")


def test_without_a_job_code_folder_jobs_import_the_project(settings):
    settings.OPOS_JOB_CODE_DIR = ""
    assert backends.job_environment() == {"PYTHONPATH": str(Path(settings.BASE_DIR))}


def test_the_entrypoint_checks_the_slurm_controller_and_runs_the_command(slurm_cluster, tmp_path):
    code = tmp_path / "code"
    with slurm_in_use():  # not while a fault trial has the controller stopped
        done = run_entrypoint(
            {"SLURM_CONF": slurm_conf(), "OPOS_JOB_CODE_DIR": str(code)}, "echo", "worker started"
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("worker started")
    assert (code / "campaigns" / "execution" / "wrapper.py").exists()


def test_the_entrypoint_stops_with_the_reason_when_slurm_is_unreachable(slurm_cluster, tmp_path):
    missing = run_entrypoint({"SLURM_CONF": str(tmp_path / "none.conf")}, "echo", "started")
    assert missing.returncode == 64
    assert "is not a readable file" in missing.stderr
    assert "started" not in missing.stdout

    # A controller that does not answer: a slurm.conf naming a port nobody listens on.
    lines = Path(slurm_conf()).read_text().splitlines()
    dead = tmp_path / "dead.conf"
    kept = [line for line in lines if not line.startswith("SlurmctldPort")]
    dead.write_text("\n".join([*kept, "SlurmctldPort=9", "MessageTimeout=2", ""]))
    down = run_entrypoint(
        {"SLURM_CONF": str(dead), "OPOS_BATCH_TIMEOUT_S": "20"}, "echo", "started"
    )
    assert down.returncode == 64
    assert "does not answer" in down.stderr

    # A site whose controller is down for maintenance may start the worker anyway.
    anyway = run_entrypoint(
        {"SLURM_CONF": str(dead), "OPOS_BATCH_TIMEOUT_S": "20", "OPOS_BATCH_CHECKS": "off"},
        "echo",
        "started",
    )
    assert anyway.returncode == 0
    assert "does not answer" in anyway.stderr
    assert anyway.stdout.strip() == "started"


def test_the_entrypoint_refuses_a_missing_munge_key_when_munge_does_not_answer(
    slurm_cluster, tmp_path
):
    """Without a running munged (PATH without munge's client, as in a fresh container) the
    key must be mounted; the error names where."""
    conf = slurm_conf()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "dirname", "timeout", "sinfo", "python", "install", "su", "cat"):
        real = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
        if real:
            (bin_dir / tool).symlink_to(real)
    done = run_entrypoint(
        {"SLURM_CONF": conf, "PATH": str(bin_dir), "MUNGE_KEY_FILE": str(tmp_path / "nokey")},
        "/bin/echo",
        "started",
    )
    assert done.returncode == 64
    assert f"no MUNGE key at {tmp_path / 'nokey'}" in done.stderr


def test_the_entrypoint_stops_when_the_htcondor_collector_does_not_answer(tmp_path):
    config = tmp_path / "condor_config"
    config.write_text("COLLECTOR_HOST = 127.0.0.1:9\nSEC_DEFAULT_AUTHENTICATION_METHODS = FS\n")
    done = run_entrypoint(
        {"CONDOR_CONFIG": str(config), "OPOS_BATCH_TIMEOUT_S": "30"}, "echo", "started"
    )
    assert done.returncode == 64, done.stderr
    assert "batch-client: HTCondor:" in done.stderr
    assert "the HTCondor schedd does not answer" in done.stderr
    assert "started" not in done.stdout

"""A job cannot reach the service: its database, secret key, broker folder, environment.

A probe job tries each, on the local backend (bubblewrap sandbox, and the job user when the
tests run as root) and on the real Slurm cluster (submitted as the batch account
``opos-job``, which scripts/slurm/up.sh creates). Whatever it manages to read it writes to
its stderr, which members could once read through the API: the stderr must hold no secret.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings

import opos.settings as configured
from campaigns.batch import ArraySpec, BackendError, BatchState, JobRef
from campaigns.batch.local import LocalBackend
from campaigns.batch.slurm import SlurmBackend

SECRET_KEY = "sk-" + "s3cr3t" * 8
TOKEN_ROW = "token-row-" + "f00d" * 10
BROKER_MESSAGE = "broker-message-" + "beef" * 10

PROBE = r"""
import json, os, socket, sys
targets = json.loads(sys.argv[1])
results = {}
def attempt(name, action):
    try:
        value = action()
    except OSError as exc:
        results[name] = type(exc).__name__
    else:
        results[name] = "READ"
        sys.stderr.write(f"{name}: {value!r}\n")  # a leak would show here
def read(path):
    with open(path, "rb") as fh:
        return fh.read()
attempt("database", lambda: read(targets["database"]))
attempt("secret_key", lambda: read(targets["secret_key"]))
attempt("broker_folder", lambda: os.listdir(targets["broker"]))
attempt("broker_message", lambda: read(targets["broker_message"]))
attempt("service_environment", lambda: read(f"/proc/{targets['service_pid']}/environ"))
for path in targets.get("more", []):
    attempt(path, lambda path=path: read(path))
for path in targets.get("sockets", []):
    def connect(path=path):
        with socket.socket(socket.AF_UNIX) as unix:
            unix.connect(path)
    attempt(path, connect)
for port in targets.get("ports", []):
    attempt(f"port {port}", lambda port=port: socket.create_connection(("127.0.0.1", port), 2))
results["secret_in_environment"] = any(
    targets["secret"] in value for value in os.environ.values()
)
results["uid"] = os.getuid()
with open("probe.json", "w") as fh:
    json.dump(results, fh)
"""


def service_data(base: Path) -> dict:
    """A data folder shaped as the service makes it (opos/settings.py): 0711, the database,
    secret key and broker folder private, the work root inside; returns the probe targets."""
    data = base / "data"
    data.mkdir(mode=0o711)
    data.chmod(0o711)
    database = data / "opos.sqlite3"
    os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE authtoken (digest TEXT, user_id INTEGER)")
        db.execute("INSERT INTO authtoken VALUES (?, 1)", [TOKEN_ROW])
    db.close()
    secret = data / "secret_key"
    os.close(os.open(secret, os.O_CREAT | os.O_WRONLY, 0o600))
    secret.write_text(SECRET_KEY)
    broker = data / "broker"
    (broker / "queue").mkdir(parents=True, mode=0o700)
    broker.chmod(0o700)
    message = broker / "queue" / "0001.msg"
    message.write_text(BROKER_MESSAGE)
    work = data / "work"
    work.mkdir()
    return {
        "data": data,
        "work": work,
        "database": str(database),
        "secret_key": str(secret),
        "broker": str(broker),
        "broker_message": str(message),
        "service_pid": os.getpid(),
        "secret": SECRET_KEY,
    }


def probe_array(targets: dict, token: str) -> tuple[Path, Path]:
    """An array folder in the work root (campaign 1, stage 1) holding the probe script."""
    array_dir = targets["work"] / "c1" / "s1" / token
    array_dir.mkdir(parents=True)
    for folder in (targets["work"] / "c1", targets["work"] / "c1" / "s1"):
        folder.chmod(0o755)
    script = array_dir / "probe.py"
    script.write_text(PROBE)
    return array_dir, script


def assert_nothing_reached(array_dir: Path, stderr: str) -> dict:
    results = json.loads((array_dir / "0" / "probe.json").read_text())
    for target in ("database", "secret_key", "broker_folder", "broker_message"):
        assert results[target] in {"PermissionError", "FileNotFoundError"}, (target, results)
    assert results["service_environment"] in {"PermissionError", "FileNotFoundError"}, results
    assert "READ" not in results.values(), results
    assert results["secret_in_environment"] is False
    for secret in (SECRET_KEY, TOKEN_ROW, BROKER_MESSAGE):
        assert secret not in stderr
    return results


def wait_done(backend, ref: JobRef, timeout: float = 90.0) -> BatchState:
    deadline = time.monotonic() + timeout
    while True:
        state = backend.status([ref])[ref.batch_id].state
        if state in {BatchState.SUCCEEDED, BatchState.FAILED, BatchState.LOST}:
            return state
        assert time.monotonic() < deadline, f"probe still {state} after {timeout}s"
        time.sleep(0.2)


def test_settings_hide_the_data_folder_from_local_jobs():
    options = django_settings.OPOS_BACKEND_OPTIONS["local"]
    assert options["isolation"] == "sandbox"
    hidden = set(options["hidden_paths"])
    assert str(django_settings.DATA_DIR) in hidden
    assert str(django_settings.BROKER_DIR) in hidden
    assert str(configured.OPOS_WORK_DIR) in hidden  # as configured (the tests move it)
    assert options["job_network"] is False
    # The secrets in the data folder are the service's only (a batch account passes through).
    assert django_settings.DATA_DIR.stat().st_mode & 0o777 == 0o711
    assert django_settings.BROKER_DIR.stat().st_mode & 0o777 == 0o700


def test_the_job_wrapper_is_shown_whatever_the_options(tmp_path):
    """The wrapper's package is read-only in every sandbox, also when the project lies in a
    hidden place (a clone under /tmp, the service's home) and no option names it."""
    import campaigns
    from campaigns.batch import sandbox

    package = str(Path(campaigns.__file__).resolve().parent)
    isolation = sandbox.build(hidden_paths=[Path(package).parent])
    assert package in isolation.tool_paths
    argv = sandbox.bwrap_argv(isolation, element_dir=tmp_path, array_dir=tmp_path, environment={})
    assert ["--ro-bind", package, package] == argv[
        argv.index(package) - 1 : argv.index(package) + 2
    ]


def test_local_job_cannot_reach_the_service(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("DATABASE_URL", f"postgres://opos:{SECRET_KEY}@127.0.0.1/opos")
    targets = service_data(tmp_path)
    targets["ports"] = [5432, 6379]  # PostgreSQL and Redis trusting local connections
    # The local sockets of PostgreSQL, munge, ... (connecting needs no write access).
    targets["sockets"] = [str(p) for p in Path("/run").glob("*/*") if p.is_socket()]
    real_key = django_settings.DATA_DIR / "secret_key"
    # The project folder is hidden but for the wrapper's package: a deployment's .env there
    # would be out of reach as this file is.
    project_file = django_settings.BASE_DIR / "pyproject.toml"
    targets["more"] = [str(project_file), *([str(real_key)] if real_key.exists() else [])]
    array_dir, script = probe_array(targets, "tok-probe")
    options = dict(django_settings.OPOS_BACKEND_OPTIONS["local"])
    options.update(
        spool_dir=targets["data"] / "batch" / "local",
        hidden_paths=[*options["hidden_paths"], str(targets["data"])],
    )
    backend = LocalBackend(**options)
    spec = ArraySpec(
        "tok-probe",
        array_dir,
        1,
        [sys.executable, str(script), json.dumps(targets, default=str)],
        read_paths=(str(targets["work"] / "c1"),),
    )

    (batch_id,) = backend.submit(spec)

    assert wait_done(backend, JobRef(batch_id, array_dir / "0")) is BatchState.SUCCEEDED
    stderr = (array_dir / "0" / "stderr.log").read_text()
    results = assert_nothing_reached(array_dir, stderr)
    for port in targets["ports"]:
        assert results[f"port {port}"] != "READ"  # no network in the sandbox
    for path in targets["sockets"]:
        assert results[path] == "FileNotFoundError"  # /run is empty in the sandbox
    for path in targets["more"]:
        assert results[path] in {"PermissionError", "FileNotFoundError"}
    if os.geteuid() == 0:
        assert results["uid"] != 0  # the job user, not root


def test_local_backend_refuses_to_run_jobs_without_bwrap(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    backend = LocalBackend(spool_dir=tmp_path / "spool", slots=1)
    array_dir = tmp_path / "arr"
    array_dir.mkdir()

    with pytest.raises(BackendError) as refused:
        backend.submit(ArraySpec("tok-nobwrap", array_dir, 1, ["/bin/true"]))

    message = str(refused.value)
    assert "bubblewrap" in message and "OPOS_LOCAL_ISOLATION=off" in message
    assert backend.find("tok-nobwrap") == []  # nothing was queued
    # The explicit opt-out runs jobs without the sandbox.
    plain = LocalBackend(spool_dir=tmp_path / "spool-off", slots=1, isolation="off")
    (batch_id,) = plain.submit(ArraySpec("tok-off", array_dir, 1, ["/bin/true"]))
    assert wait_done(plain, JobRef(batch_id, array_dir / "0")) is BatchState.SUCCEEDED


@pytest.fixture
def world_readable_base():
    """A folder the batch account can pass through (pytest's own tmp folder is 0700)."""
    base = Path(tempfile.mkdtemp(prefix="opos-isolation-"))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slurm
def test_slurm_job_runs_as_the_batch_account_and_cannot_reach_the_service(
    slurm_cluster, world_readable_base, monkeypatch
):
    if os.geteuid() != 0:
        pytest.skip("submitting as the batch account (sbatch --uid) needs root")
    monkeypatch.setenv("SECRET_KEY", SECRET_KEY)
    targets = service_data(world_readable_base)
    token = f"t{time.time_ns()}-isolation"
    array_dir, script = probe_array(targets, token)
    backend = SlurmBackend(
        state_dir=world_readable_base / "slurm-state", job_user="opos-job", timeout=60
    )
    # The system interpreter: the batch account reads what a batch node has, not the
    # service's virtualenv under /root.
    spec = ArraySpec(
        token,
        array_dir,
        1,
        ["/usr/bin/python3", str(script), json.dumps(targets, default=str)],
        memory_mb=100,
        walltime_s=120,
    )

    (batch_id,) = backend.submit(spec)

    assert wait_done(backend, JobRef(batch_id, array_dir / "0")) is BatchState.SUCCEEDED
    stderr = (array_dir / "0" / "stderr.log").read_text()
    results = assert_nothing_reached(array_dir, stderr)
    assert results["uid"] == __import__("pwd").getpwnam("opos-job").pw_uid


def test_slurm_refuses_root_or_the_service_account_as_batch_account():
    with pytest.raises(BackendError, match="another account"):
        SlurmBackend(job_user="root")


@pytest.mark.django_db(transaction=True)
def test_demo_workflow_completes_in_the_sandbox_as_configured(
    exec_env, settings, experiment, operator
):
    """What ``make run`` does: the demo's three stages (each reading the one before) run to
    completion with the local backend exactly as the settings configure it."""
    from requests_app.choices import RequestState
    from tests.campaigns.exec_support import launch, run_until

    options = dict(configured.OPOS_BACKEND_OPTIONS["local"], spool_dir=str(exec_env / "spool"))
    assert options["isolation"] == "sandbox"
    settings.OPOS_BACKEND_OPTIONS = {**settings.OPOS_BACKEND_OPTIONS, "local": options}
    _campaign, request = launch(experiment, operator, events=200, per_job=100)

    run_until(lambda: type(request).objects.get(pk=request.pk).state == RequestState.COMPLETED)


@pytest.mark.slurm
@pytest.mark.django_db(transaction=True)
def test_demo_workflow_completes_on_slurm_as_the_batch_account(
    slurm_cluster, exec_env, settings, experiment, operator, world_readable_base
):
    """The whole path on Slurm with a batch account that is not the service's: the wrapper
    and the demo code run as ``opos-job`` with the system interpreter (what a batch node
    has), in work folders the service reads back."""
    if os.geteuid() != 0:
        pytest.skip("submitting as the batch account (sbatch --uid) needs root")
    from campaigns.models import Job
    from requests_app.choices import RequestState
    from tests.campaigns.exec_support import launch, run_until

    settings.OPOS_WORK_DIR = world_readable_base / "work"
    settings.OPOS_JOB_PYTHON = "/usr/bin/python3"
    settings.OPOS_BACKEND_OPTIONS = {
        **settings.OPOS_BACKEND_OPTIONS,
        "slurm": {"state_dir": str(exec_env / "slurm-state"), "job_user": "opos-job"},
    }
    campaign, request = launch(experiment, operator, events=200, per_job=100, backend="slurm")

    run_until(
        lambda: type(request).objects.get(pk=request.pk).state == RequestState.COMPLETED,
        timeout=240,
        pause=1.0,
    )
    batch_uid = __import__("pwd").getpwnam("opos-job").pw_uid
    for job in Job.objects.filter(stage__campaign=campaign):
        assert Path(job.workdir, "manifest.json").stat().st_uid == batch_uid

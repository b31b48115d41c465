"""Faults survived: a small campaign on real PostgreSQL, Redis, Celery workers and Slurm,
with a fault in the middle; afterwards every planned job ended in a final state exactly once,
no array reached Slurm twice, no output was declared twice, request and campaign completed.

Each trial runs ``tests/faults/driver.py`` in a process of its own, on a PostgreSQL cluster
and a Redis server started for these tests (restarting them disturbs nothing else on the
machine) and on the machine's Slurm cluster (``scripts/slurm/up.sh``), whose controller
the ``slurmctld_stop`` trial stops and starts again.

Sizes come from the environment, small by default (CI), large under ``make test-faults``:
``OPOS_FAULT_JOBS`` (jobs per stage; 3 stages), ``OPOS_FAULT_KILLS`` (worker kills),
``OPOS_FAULT_HOLD_S`` (how long an outage lasts), ``OPOS_FAULT_SEED``. Each trial appends a
line to ``OPOS_FAULT_RESULTS`` (default ``data/fault-results.md``) for docs/reliability.md.

Skipped with the reason when a service cannot run here (not root, no Slurm, no loop device);
``OPOS_REQUIRE_FAULTS=1`` makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.faults.services import ROOT, Postgres, Redis, Shims, Slurm, TinyFilesystem, Unavailable
from tests.parallel import slurm_in_use

pytestmark = [pytest.mark.faults, pytest.mark.timeout(3600)]

JOBS = int(os.environ.get("OPOS_FAULT_JOBS", "8"))
KILLS = int(os.environ.get("OPOS_FAULT_KILLS", "3"))
SEED = int(os.environ.get("OPOS_FAULT_SEED", "9"))
HOLD_S = os.environ.get("OPOS_FAULT_HOLD_S", "15")
TIMEOUT_S = float(os.environ.get("OPOS_FAULT_TIMEOUT_S", str(240 + 12 * JOBS)))
RESULTS = Path(os.environ.get("OPOS_FAULT_RESULTS", str(ROOT / "data" / "fault-results.md")))


TEMPLATE_DB = "faults_template"
"""Migrated once per module; each trial's database is a copy of it."""


def base_environment() -> dict[str, str]:
    """This process's environment without the test run's own database and broker."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_"))}


def unavailable(message: str):
    if os.environ.get("OPOS_REQUIRE_FAULTS") == "1":
        pytest.fail(f"OPOS_REQUIRE_FAULTS=1 but {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def services():
    """A private PostgreSQL and Redis, the batch shims, and a responding Slurm cluster."""
    # Not under pytest's 0700 temporary root: the postgres user must reach its cluster.
    folder = Path(tempfile.mkdtemp(prefix="opos-faults-"))
    folder.chmod(0o755)
    pg = Postgres(folder / "pg")
    redis = Redis(folder / "redis")
    shims = Shims(folder / "shims")
    for sub in (pg.folder, redis.folder):
        sub.mkdir()
    try:
        # Not while another test worker's trial has the controller stopped.
        with slurm_in_use():
            Slurm.check()
        shims.install()
        pg.start()
        redis.start()
        pg.migrated_template(TEMPLATE_DB, base_environment())
    except (Unavailable, subprocess.CalledProcessError, TimeoutError) as exc:
        pg.stop()
        redis.stop()
        unavailable(f"fault trials cannot run here: {exc}")
    yield {"pg": pg, "redis": redis, "shims": shims, "folder": folder}
    redis.stop()
    pg.stop()
    if os.environ.get("OPOS_FAULT_KEEP") != "1":
        shutil.rmtree(folder, ignore_errors=True)


def run_trial(
    services,
    scenario: str,
    work_dir: Path | None = None,
    workers: int = 2,
    label: str | None = None,
    **extra,
) -> dict:
    pg, redis, shims = services["pg"], services["redis"], services["shims"]
    label = label or scenario
    folder = services["folder"] / label
    folder.mkdir()
    database = f"faults_{label}"
    pg.create_database(database, template=TEMPLATE_DB)
    env = {
        **base_environment(),
        "DATABASE_URL": pg.url(database),
        "CELERY_BROKER_URL": redis.url,
        "CELERY_RESULT_BACKEND": redis.url,
        "OPOS_DATA_DIR": str(folder / "data"),
        "OPOS_WORK_DIR": str(work_dir or folder / "work"),
        "OPOS_LOCAL_SPOOL_DIR": str(folder / "spool"),
        "OPOS_SLURM_STATE_DIR": str(folder / "slurm-state"),
        "PATH": shims.path(),
        "OPOS_SUBMIT_INTERVAL_S": "2",
        "OPOS_POLL_INTERVAL_S": "2",
        "OPOS_FINALIZE_INTERVAL_S": "2",
        "OPOS_RECOVER_INTERVAL_S": "5",
        "OPOS_STUCK_INTERVAL_S": "600",
        "OPOS_SNAPSHOT_INTERVAL_S": "600",
        "SERVICEDESK_PULL_INTERVAL_S": "3600",
        "SERVICEDESK_PUSH_INTERVAL_S": "3600",
        "OPOS_SUBMIT_TASK_TIME_LIMIT_S": "20",
        "OPOS_SUBMISSION_GRACE_S": "25",
        "OPOS_BATCH_TIMEOUT_S": "5",
        "OPOS_RETRY_BACKOFF_S": "1",
        "OPOS_MAX_ATTEMPTS": "4",
        "OPOS_LOCAL_SLOTS": "2",
        "OPOS_FAULT_HOLD_S": HOLD_S,
        "LOG_LEVEL": "INFO",
    }
    described = {
        "pg_folder": str(pg.folder),
        "pg_port": pg.port,
        "redis_folder": str(redis.folder),
        "redis_port": redis.port,
        "sbatch_log": str(shims.sbatch_log),
        "hang_flag": str(shims.hang_flag),
        **extra,
    }
    argv = [
        sys.executable,
        "-m",
        "tests.faults.driver",
        scenario,
        "--folder",
        str(folder),
        "--jobs",
        str(JOBS),
        "--kills",
        str(KILLS),
        "--seed",
        str(SEED),
        "--timeout",
        str(TIMEOUT_S),
        "--workers",
        str(workers),
        "--services",
        json.dumps(described),
    ]
    started = time.monotonic()
    with (folder / "driver.log").open("w") as log:
        subprocess.run(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=TIMEOUT_S + 300
        )
    report_file = folder / "report.json"
    if not report_file.exists():
        pytest.fail("the trial wrote no report:\n" + (folder / "driver.log").read_text()[-4000:])
    report = json.loads(report_file.read_text())
    report["wall_s"] = round(time.monotonic() - started, 1)
    if not report.get("ok"):
        report["log_tails"] = _log_tails(folder / "logs")
    _record(report)
    print(json.dumps(report, indent=1))
    return report


def _log_tails(logs: Path, lines: int = 15) -> dict[str, list[str]]:
    """The last warnings and errors of each process of a failed trial (its folder is
    removed after the test unless OPOS_FAULT_KEEP=1)."""
    tails = {}
    for log in sorted(logs.glob("*.log")):
        noted = [
            line[:300]
            for line in log.read_text(errors="replace").splitlines()
            if "WARNING" in line or "ERROR" in line or "Traceback" in line
        ]
        tails[log.name] = noted[-lines:]
    return tails


def _record(report: dict) -> None:
    """One line of the summary table in docs/reliability.md."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    faults = "; ".join(
        e["fault"] + (f" (recovered in {e['recovery_s']} s)" if "recovery_s" in e else "")
        for e in report.get("events", [])
        if "SIGKILL" not in e.get("fault", "")
    )
    failed = [name for name, ok in report.get("checks", {}).items() if not ok]
    outcome = "all checks pass" if report.get("ok") else f"FAILED: {failed or report.get('error')}"
    line = (
        f"| {report['scenario']} | {3 * report['jobs_per_stage']} jobs, seed {report['seed']} "
        f"| {faults or 'none'} | {report.get('attempts', '?')} attempts, "
        f"failures {report.get('failures', {})} | {report.get('duration_s', '?')} s "
        f"| {outcome} |\n"
    )
    with RESULTS.open("a") as fh:
        fh.write(line)


def assert_survived(report: dict) -> None:
    assert report.get("ok"), json.dumps(report, indent=1)


def test_no_fault_baseline(services):
    assert_survived(run_trial(services, "none"))


def test_three_workers_share_the_work_without_duplicates_or_gaps(services):
    """Scale-out: two single-process workers and one with a pool of two, all taking the same
    submit, poll and finalize tasks at once. The trial's checks are the exactly-once ones
    (no array reached Slurm twice, no task listed twice by squeue, every planned job ended
    once, no output twice); on top, the work was shared: each worker finished tasks."""
    report = run_trial(services, "none", workers=3, label="three_workers")
    assert_survived(report)
    by_worker = report["tasks_by_worker"]
    assert len(by_worker) == 3, by_worker
    for name, counts in by_worker.items():
        assert sum(counts.values()) > 0, (
            f"{name} finished no submit, poll or finalize task: {by_worker}"
        )
    assert all(n == 0 for n in report["restarts"].values()), report["restarts"]


def test_worker_killed_during_submit_poll_and_finalize(services):
    report = run_trial(services, "worker_kill")
    assert_survived(report)
    kills = [e for e in report["events"] if e.get("fault") == "worker kills done"]
    assert kills and kills[0]["count"] == KILLS, report["events"]


def test_redis_restarted(services):
    assert_survived(run_trial(services, "redis_restart"))


def test_postgresql_restarted(services):
    assert_survived(run_trial(services, "postgres_restart"))


@pytest.mark.slurm
@pytest.mark.stops_slurm_controller
def test_slurm_controller_stopped_and_started(services):
    assert_survived(run_trial(services, "slurmctld_stop"))


def test_batch_command_hangs(services):
    report = run_trial(services, "batch_hang")
    assert_survived(report)
    hang = next(e for e in report["events"] if "squeue hangs" in e.get("fault", ""))
    # The other campaign (local backend) had work left and went on while squeue hung.
    assert hang["local_campaign_jobs_left_at_start"] > 0, report["events"]
    assert hang["local_campaign_jobs_done_meanwhile"] > 0, report["events"]


def test_output_area_full(services, tmp_path):
    area = TinyFilesystem(tmp_path)
    try:
        mount = area.mount()
    except (Unavailable, subprocess.CalledProcessError) as exc:
        unavailable(f"no small filesystem for the output area: {exc}")
    try:
        report = run_trial(services, "disk_full", work_dir=mount, fs_folder=str(tmp_path))
    finally:
        area.unmount()
    assert_survived(report)

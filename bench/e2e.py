"""End to end on the real Slurm cluster: the tracker against the same jobs through sbatch alone.

    .venv/bin/python -m bench.e2e [--jobs 334] [--workers 1,2,4] [--repeat 3]
        [--redis-db 10] [--interval 2] [--out bench/results/e2e.json]

**Ours**: a three-stage campaign of the demo workflow (generation -> simulation ->
reconstruction, ``--jobs`` jobs per stage, one input file per job after the first stage)
on a fresh PostgreSQL database, with Celery beat and W workers (each a single process,
``--pool solo``) on Redis: the wall time from the launch until the campaign is completed
(every job's outputs catalogued, the request completed), and the workers' CPU time (user
plus system of each worker process, read from ``/proc`` when it is ready and just before it
is stopped: its start-up is not counted), per job.

**The floor**: the same payload scripts straight to the same Slurm cluster: three
``sbatch --array`` chained by ``--dependency=aftercorr`` (task i of a stage starts when task
i of the stage before ended well, as in the tracker's one-file-per-job stages), each task
writing the ``job.json`` the payload reads and running it in a folder of its own; from the
first sbatch until Slurm lists none of the tasks any more. Same memory, time limit and one
CPU per task as the tracker asks for.

Ours and the floor alternate within each repetition, so a neighbour's load falls on both.
The figure per worker count is the median of ``--repeat`` runs with the spread (min-max).
Only benchmark databases (``bench_e2e*``) and the Redis database named by ``--redis-db``
(refused unless empty or taken by an earlier run of this benchmark) are touched.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, create_database, data_dir, setup_django

RUN_DB = "bench_e2e"
BASE_DB = "bench_e2e_base"
EVENTS_PER_JOB = 50
REDIS_OWNER_KEY = "opos-bench-owner"
STAGES = (
    ("generation", "generate.py"),
    ("simulation", "simulate.py"),
    ("reconstruction", "reconstruct.py"),
)
WALLTIME_S = 60
MEMORY_MB = 500
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=334, help="jobs per stage (3 stages)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("--redis-db", type=int, default=10)
    parser.add_argument(
        "--interval", type=int, default=2, help="beat's submit/poll/finalize period, s"
    )
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "e2e.json"))
    args = parser.parse_args(argv)
    args.worker_counts = [int(n) for n in args.workers.split(",") if n.strip()]
    if not args.worker_counts or min(args.worker_counts) < 1:
        parser.error("--workers: counts of at least 1")
    return args


# --- services --------------------------------------------------------------------------------


def redis_url(args: argparse.Namespace, owner: str = "bench/e2e.py") -> str:
    """The benchmark's Redis database, emptied; only one that is empty or a benchmark's is
    taken (``owner`` names the benchmark that took it)."""
    import redis

    url = f"{args.redis.rstrip('/')}/{args.redis_db}"
    client = redis.Redis.from_url(url)
    try:
        keys = client.dbsize()
        if keys and not client.exists(REDIS_OWNER_KEY):
            raise SystemExit(
                f"Redis database {args.redis_db} holds {keys} key(s) this benchmark did not "
                "write: choose a free one with --redis-db N"
            )
        client.flushdb()
        client.set(REDIS_OWNER_KEY, owner)
    finally:
        client.close()
    return url


def slurm_ready() -> None:
    if shutil.which("sbatch") is None:
        raise SystemExit("sbatch is not installed: run `make slurm-up` first")
    answer = subprocess.run(["sinfo", "-h", "-o", "%a"], capture_output=True, text=True)
    if answer.returncode != 0 or "up" not in answer.stdout:
        raise SystemExit(f"the Slurm cluster does not answer: {answer.stderr.strip()}")


# --- ours ----------------------------------------------------------------------------------------


def prepare_base(run_db: str = RUN_DB, base_db: str = BASE_DB) -> None:
    """A migrated database with the experiment, the operator and the demo template: copied
    for every run (CREATE DATABASE ... TEMPLATE) so that each starts from the same state."""
    from django.core.management import call_command
    from django.db import connections

    create_database(run_db)
    call_command("migrate", verbosity=0)
    from tests.campaigns.exec_support import demo_template
    from tests.factories import ExperimentFactory, UserFactory, grant

    experiment = ExperimentFactory(slug="bench-e2e", name="Bench end to end")
    grant(UserFactory(username="bench-e2e-operator"), "operator")
    demo_template(experiment)
    connections.close_all()
    create_database(base_db, template=run_db)


def new_campaign(jobs: int):
    """A fresh copy of the base, and in it an approved request scheduled into a campaign
    on Slurm (not launched yet)."""
    from django.contrib.auth import get_user_model
    from django.db import connections

    connections.close_all()
    create_database(RUN_DB, template=BASE_DB)
    from campaigns.services import create_campaign, schedule_requests
    from experiments.models import Experiment, WorkflowTemplate
    from tests.campaigns.factories import approved_request

    experiment = Experiment.objects.get(slug="bench-e2e")
    operator = get_user_model().objects.get(username="bench-e2e-operator")
    template = WorkflowTemplate.objects.get(experiment=experiment)
    request = approved_request(
        experiment, template=template, events=jobs * EVENTS_PER_JOB, per_job=EVENTS_PER_JOB
    )
    campaign = create_campaign(
        operator, experiment, name="e2e", deadline=request.deadline, backend="slurm"
    )
    schedule_requests(campaign, [request.pk], operator)
    return campaign, operator


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of a live process and its reaped children (``/proc/PID/stat``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / CLOCK_TICKS


class Processes:
    """Celery beat (unless ``beat`` is false) and W workers on the run's database and Redis,
    logging to files."""

    def __init__(self, workers: int, env: dict[str, str], folder: Path, beat: bool = True):
        self.env, self.folder = env, folder
        self.count = workers
        self.with_beat = beat
        self.popens: list[subprocess.Popen] = []

    def _start(self, name: str, *argv: str) -> subprocess.Popen:
        log = (self.folder / f"{name}.log").open("w")
        command = [sys.executable, "-m", "celery", "-A", "opos", *argv, "--loglevel", "INFO"]
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start(self) -> None:
        for n in range(1, self.count + 1):
            self.popens.append(
                self._start(
                    f"worker{n}",
                    "worker",
                    "--pool",
                    "solo",
                    "--without-mingle",
                    "--without-gossip",
                    "--hostname",
                    f"e2e{n}@%h",
                )
            )
        deadline = time.monotonic() + 60
        for n in range(1, self.count + 1):  # every worker consuming before the launch
            log = self.folder / f"worker{n}.log"
            while "ready." not in log.read_text(errors="replace"):
                if time.monotonic() > deadline:
                    raise SystemExit(f"worker {n} did not start: {log}")
                time.sleep(0.1)
        # What the workers spent starting (imports, Django set-up) is not the work's.
        self.cpu_at_start = self.worker_cpu()
        if self.with_beat:
            self.beat = self._start("beat", "beat", "-s", str(self.folder / "beat-schedule"))

    def worker_cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.popens)

    def stop(self) -> None:
        for popen in [*self.popens, getattr(self, "beat", None)]:
            if popen is None or popen.poll() is not None:
                continue
            os.killpg(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()


def run_ours(args: argparse.Namespace, workers: int, folder: Path, redis: str) -> dict[str, Any]:
    from campaigns.models import Campaign, Job
    from campaigns.services import campaign_action

    campaign, operator = new_campaign(args.jobs)
    interval = str(args.interval)
    env = {
        **os.environ,
        "CELERY_BROKER_URL": redis,
        "CELERY_RESULT_BACKEND": redis,
        "OPOS_WORK_DIR": str(folder / "work"),
        "OPOS_SLURM_STATE_DIR": str(folder / "slurm-state"),
        "OPOS_SUBMIT_INTERVAL_S": interval,
        "OPOS_POLL_INTERVAL_S": interval,
        "OPOS_FINALIZE_INTERVAL_S": interval,
        "OPOS_SNAPSHOT_INTERVAL_S": "600",
        "OPOS_STUCK_INTERVAL_S": "600",
        "SERVICEDESK_PULL_INTERVAL_S": "3600",
        "SERVICEDESK_PUSH_INTERVAL_S": "3600",
        "LOG_LEVEL": "INFO",
    }
    processes = Processes(workers, env, folder)
    processes.start()
    try:
        started = time.monotonic()
        campaign_action(campaign, "launch", operator)
        deadline = started + args.timeout
        while Campaign.objects.filter(pk=campaign.pk).values_list("state", flat=True)[0] not in (
            "completed",
            "cancelled",
            "failed",
        ):
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"the campaign did not complete in {args.timeout:.0f} s ({folder})"
                )
            time.sleep(0.2)
        wall = time.monotonic() - started
        cpu = processes.worker_cpu() - processes.cpu_at_start
    finally:
        processes.stop()
    state = Campaign.objects.get(pk=campaign.pk).state
    jobs = Job.objects.filter(stage__campaign=campaign)
    planned = 3 * args.jobs
    succeeded = jobs.filter(state="succeeded").count()
    if state != "completed" or succeeded != planned:
        raise SystemExit(f"campaign {state}, {succeeded} of {planned} jobs succeeded ({folder})")
    return {
        "wall_s": round(wall, 1),
        "worker_cpu_s": round(cpu, 1),
        "worker_cpu_ms_per_job": round(1000 * cpu / planned, 1),
        "attempts": jobs.count(),
    }


# --- the floor -----------------------------------------------------------------------------------

FLOOR_TASK = r"""#!/bin/bash
# One task of the floor: the job.json the payload reads, then the payload, in a folder of its own.
set -eu
i=$SLURM_ARRAY_TASK_ID
dir="$FLOOR_DIR/$FLOOR_STAGE/$i"
mkdir -p "$dir" && cd "$dir"
if [ -z "$FLOOR_PREVIOUS" ]; then
    printf '{"index":%d,"events":%d,"first_event":%d,"parameters":%s,"inputs":[]}\n' \
        "$i" "$FLOOR_EVENTS" "$((i * FLOOR_EVENTS))" '{"seed":1,"energy_gev":2.5}' > job.json
else
    input=$(ls "$FLOOR_DIR/$FLOOR_PREVIOUS/$i/output/"*)
    printf '{"index":%d,"events":%d,"first_event":%d,"parameters":{},"inputs":["%s"]}\n' \
        "$i" "$FLOOR_EVENTS" "$((i * FLOOR_EVENTS))" "$input" > job.json
fi
exec "$FLOOR_PYTHON" "$FLOOR_SCRIPT"
"""


def run_floor(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    task = folder / "task.sh"
    task.write_text(FLOOR_TASK)
    task.chmod(0o755)
    name = f"opos-e2e-floor-{os.getpid()}-{time.monotonic_ns()}"
    started = time.monotonic()
    previous_id, previous_stage = None, ""
    for stage, script in STAGES:
        env = {
            **os.environ,
            "FLOOR_DIR": str(folder),
            "FLOOR_STAGE": stage,
            "FLOOR_PREVIOUS": previous_stage,
            "FLOOR_EVENTS": str(EVENTS_PER_JOB),
            "FLOOR_PYTHON": sys.executable,
            "FLOOR_SCRIPT": str(ROOT / "demo" / "workflow" / script),
        }
        argv = [
            "sbatch",
            "--parsable",
            f"--job-name={name}",
            f"--array=0-{args.jobs - 1}",
            "--ntasks=1",
            "--cpus-per-task=1",
            f"--mem={MEMORY_MB}M",
            f"--time={max(1, WALLTIME_S // 60)}",
            f"--output={folder}/slurm-%A_%a.out",
            "--export=ALL",
        ]
        if previous_id:
            argv.append(f"--dependency=aftercorr:{previous_id}")
        answer = subprocess.run([*argv, str(task)], env=env, capture_output=True, text=True)
        if answer.returncode != 0:
            raise SystemExit(f"{shlex.join(argv)}: {answer.stderr.strip()}")
        previous_id, previous_stage = answer.stdout.strip().split(";")[0], stage
    deadline = started + args.timeout
    while True:
        listed = subprocess.run(
            ["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True
        )
        if listed.returncode == 0 and not listed.stdout.strip():
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"the floor's tasks did not finish in {args.timeout:.0f} s")
        time.sleep(0.2)
    wall = time.monotonic() - started
    outputs = list(folder.glob("reconstruction/*/output/*"))
    if len(outputs) != args.jobs:
        raise SystemExit(f"the floor wrote {len(outputs)} of {args.jobs} final outputs ({folder})")
    return {"wall_s": round(wall, 1)}


# --- the run -------------------------------------------------------------------------------------


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    slurm_ready()
    redis = redis_url(args)
    setup_django(RUN_DB, EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
    prepare_base()
    root = data_dir() / "e2e"
    shutil.rmtree(root, ignore_errors=True)
    load_at_start = os.getloadavg()
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in args.worker_counts}
    for repetition in range(args.repeat):
        for workers in args.worker_counts:
            folder = root / f"r{repetition}-w{workers}"
            (folder / "ours").mkdir(parents=True)
            ours = run_ours(args, workers, folder / "ours", redis)
            floor = run_floor(args, folder / "floor")
            ratio = ours["wall_s"] / floor["wall_s"]
            runs[workers].append({"ours": ours, "floor": floor, "ratio": round(ratio, 3)})
            print(
                f"run {repetition + 1}/{args.repeat}, {workers} worker(s): ours {ours['wall_s']} s "
                f"(worker CPU {ours['worker_cpu_ms_per_job']} ms/job), floor {floor['wall_s']} s, "
                f"{ratio:.2f}x",
                flush=True,
            )
    summary = {
        str(workers): {
            "ours_wall_s": spread([r["ours"]["wall_s"] for r in results]),
            "floor_wall_s": spread([r["floor"]["wall_s"] for r in results]),
            "ratio": spread([r["ratio"] for r in results]),
            "worker_cpu_ms_per_job": spread([r["ours"]["worker_cpu_ms_per_job"] for r in results]),
            "jobs_per_s": spread([3 * args.jobs / r["ours"]["wall_s"] for r in results]),
        }
        for workers, results in runs.items()
    }
    result = {
        "jobs": 3 * args.jobs,
        "repeat": args.repeat,
        "interval_s": args.interval,
        "load_average_at_start": load_at_start,
        "nproc": os.cpu_count(),
        "summary": summary,
        "runs": {str(k): v for k, v in runs.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

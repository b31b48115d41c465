"""Scale-out: jobs submitted and polled per second by 1, 2 and 4 Celery workers, on two
Slurm clusters at once.

    .venv/bin/python -m bench.scaleout [--jobs 10000] [--campaigns 20] [--workers 1,2,4]
        [--repeat 3] [--polls 24] [--redis-db 13] [--out bench/results/scaleout.json]

What grows with workers is what the tracker does, not what the batch system does, so
nothing runs: both clusters of ``make slurm-up`` (``slurm`` and ``slurm-b``, each its own
controller) get a partition of their own created DOWN (``scontrol create``, root only),
the two endpoints submit there, and every job stays pending until the trial cancels it.

Each trial starts from a fresh copy of a migrated database with ``--campaigns`` launched
campaigns, half on each cluster, ``--jobs`` ready jobs in all (the first stage of the demo
workflow; the later stages wait on it): by default 20 arrays of 500, so that what each
stage's submission costs (claim, job descriptions, ``sbatch``, record) is what is shared
out, not one huge array. W workers (each one process, ``--pool solo``, no beat: the
benchmark sends the tasks):

* **submission**: the benchmark keeps ``campaigns.submit_ready`` tasks waiting in the
  queue (W of them whenever it is empty) until every ready job is in the batch system;
  jobs submitted per second, from the first task sent to the last job recorded. Workers
  share the work through the protocol's claims (``FOR UPDATE SKIP LOCKED``): while one
  runs ``sbatch`` for one stage, another claims the next.
* **poll**: ``--polls`` ``campaigns.poll`` tasks in the queue at once; jobs polled per
  second (the jobs each poll compared, read from the workers' logs, over the time until
  the last one ended). A poll of an endpoint takes its lease (one poller per cluster at a
  time) or, leased, skips it, so two clusters keep at most two workers polling; with one
  cluster, more workers add nothing here. With ``--poll-per-endpoint`` the workers poll
  endpoint by endpoint (``OPOS_POLL_PER_ENDPOINT``: each of those tasks sends one poll
  task per cluster, which different workers take).

Between the two, every job must be in the batch system exactly once (one batch id each,
none shared, as many pending tasks in Slurm as jobs queued), or the trial fails. Only
benchmark databases (``bench_scale*``), the Redis database named by ``--redis-db``
(refused unless empty or a benchmark's) and the benchmark partitions are touched.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, create_database, data_dir, emit, setup_django
from bench.e2e import EVENTS_PER_JOB, Processes, prepare_base, redis_url, slurm_ready, spread

RUN_DB = "bench_scale"
BASE_DB = "bench_scale_base"
PARTITION = "oposscale"
# The second cluster of scripts/slurm/up.sh (it prints where).
SLURM_B_CONF = os.environ.get("OPOS_SLURM_B_CONF", "/var/lib/opos-slurm-b/slurm.conf")
ENDPOINTS = ("slurm", "slurm-b")
QUEUE = "opos-bench-scaleout"
CAPACITY = 1_000_000

# "[2026-12-08 01:02:22,518: INFO/MainProcess] Task campaigns.poll[<id>] succeeded in
# 0.53s: {...}" (Celery's own log line; the time is the host's local time).
DONE_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}):.*Task (campaigns\.\w+)\[[^\]]+\] "
    r"succeeded in ([0-9.]+)s: (\{.*\})$"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="ready jobs in all")
    parser.add_argument("--campaigns", type=int, default=20, help="half on each cluster")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--polls", type=int, default=24, help="poll tasks per trial")
    parser.add_argument(
        "--poll-per-endpoint",
        action="store_true",
        help="workers with OPOS_POLL_PER_ENDPOINT (a poll task per cluster)",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("--redis-db", type=int, default=13)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "scaleout.json"))
    args = parser.parse_args(argv)
    args.worker_counts = [int(n) for n in args.workers.split(",") if n.strip()]
    if not args.worker_counts or min(args.worker_counts) < 1:
        parser.error("--workers: counts of at least 1")
    if args.campaigns < 2 or args.campaigns % 2:
        parser.error("--campaigns: an even number, half on each cluster")
    return args


# --- the clusters ------------------------------------------------------------------------------


def scontrol(conf: str | None, *argv: str, check: bool = True) -> str:
    env = {**os.environ, **({"SLURM_CONF": conf} if conf else {})}
    done = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=120, check=False, env=env
    )
    if check and done.returncode:
        raise SystemExit(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def cluster_conf(endpoint: str) -> str | None:
    return SLURM_B_CONF if endpoint == "slurm-b" else None


def make_partitions() -> None:
    """A DOWN partition on each cluster, so that nothing the benchmark submits runs."""
    if not Path(SLURM_B_CONF).exists():
        raise SystemExit(f"no second Slurm cluster ({SLURM_B_CONF}): run `make slurm-up` first")
    for endpoint in ENDPOINTS:
        conf = cluster_conf(endpoint)
        shown = scontrol(conf, "scontrol", "show", "partition", PARTITION, check=False)
        if shown.strip().startswith("PartitionName="):
            continue
        nodes = scontrol(conf, "sinfo", "-h", "-o", "%N").split()[0]
        scontrol(
            conf, "scontrol", "create", f"PartitionName={PARTITION}", f"Nodes={nodes}", "State=DOWN"
        )


def remove_partitions() -> None:
    for endpoint in ENDPOINTS:
        conf = cluster_conf(endpoint)
        scontrol(conf, "scancel", "--partition", PARTITION, check=False)
        scontrol(conf, "scontrol", "delete", f"PartitionName={PARTITION}", check=False)


def pending_tasks(endpoint: str) -> int:
    """Array tasks the cluster holds in the benchmark partition (pending arrays expanded)."""
    out = scontrol(
        cluster_conf(endpoint), "squeue", "-h", "-r", "-p", PARTITION, "-o", "%i", check=False
    )
    return len(out.split())


def cancel_all() -> None:
    for endpoint in ENDPOINTS:
        scontrol(cluster_conf(endpoint), "scancel", "--partition", PARTITION, check=False)
    deadline = time.monotonic() + 60
    while any(pending_tasks(e) for e in ENDPOINTS) and time.monotonic() < deadline:
        time.sleep(0.5)


# --- the tracker ---------------------------------------------------------------------------------


def environment(folder: Path, per_endpoint: bool = False) -> dict[str, str]:
    """What the workers and this process need to reach the two clusters' benchmark
    partitions, with room for every job."""
    return {
        "OPOS_WORK_DIR": str(folder / "work"),
        "OPOS_SLURM_STATE_DIR": str(folder / "slurm-state"),
        "OPOS_SLURM_PARTITION": PARTITION,
        "OPOS_SLURM_CAPACITY": str(CAPACITY),
        "OPOS_BATCH_ENDPOINTS": json.dumps(
            {
                "slurm-b": {
                    "kind": "slurm",
                    "slurm_conf": SLURM_B_CONF,
                    "partition": PARTITION,
                    "state_dir": str(folder / "slurm-b-state"),
                    "capacity": CAPACITY,
                }
            }
        ),
        "CELERY_TASK_DEFAULT_QUEUE": QUEUE,
        # --poll-per-endpoint: each cycle's poll becomes one poll task per endpoint, which
        # different workers take (opos/settings.py).
        "OPOS_POLL_PER_ENDPOINT": "1" if per_endpoint else "0",
    }


def new_campaigns(args: argparse.Namespace) -> list[int]:
    """A fresh copy of the base, and in it ``--campaigns`` launched campaigns, half on each
    cluster, ``--jobs`` ready jobs in all."""
    from django.contrib.auth import get_user_model
    from django.db import connections

    connections.close_all()
    create_database(RUN_DB, template=BASE_DB)
    from campaigns.services import campaign_action, create_campaign, schedule_requests
    from experiments.models import Experiment, WorkflowTemplate
    from tests.campaigns.factories import approved_request

    experiment = Experiment.objects.get(slug="bench-e2e")
    # Room for every job: what is measured is the workers, not the experiment's quota.
    Experiment.objects.filter(pk=experiment.pk).update(job_quota=CAPACITY)
    operator = get_user_model().objects.get(username="bench-e2e-operator")
    template = WorkflowTemplate.objects.get(experiment=experiment)
    per_campaign = args.jobs // args.campaigns
    ids = []
    for n in range(args.campaigns):
        request = approved_request(
            experiment,
            template=template,
            events=per_campaign * EVENTS_PER_JOB,
            per_job=EVENTS_PER_JOB,
        )
        campaign = create_campaign(
            operator,
            experiment,
            name=f"scale-{n}",
            deadline=request.deadline,
            backend=ENDPOINTS[n % 2],
        )
        schedule_requests(campaign, [request.pk], operator)
        campaign_action(campaign, "launch", operator)
        ids.append(campaign.pk)
    return ids


def ready_jobs(campaign_ids: list[int]) -> int:
    from campaigns.models import Job

    return Job.objects.filter(stage__campaign__in=campaign_ids, state="ready").count()


def exactly_once(campaign_ids: list[int], expected: int) -> dict[str, int]:
    """Every ready job went to the batch system once: one batch id each, none shared, and
    as many tasks pending in the clusters as jobs queued."""
    from django.db.models import Count

    from campaigns.models import Job

    queued = Job.objects.filter(stage__campaign__in=campaign_ids, state="queued")
    jobs = queued.count()
    shared = queued.values("backend", "batch_id").annotate(n=Count("id")).filter(n__gt=1).count()
    in_slurm = sum(pending_tasks(e) for e in ENDPOINTS)
    if jobs != expected or shared or in_slurm != expected or queued.filter(batch_id="").exists():
        raise SystemExit(
            f"not exactly once: {jobs} jobs queued of {expected}, {shared} batch ids shared, "
            f"{in_slurm} tasks in Slurm"
        )
    return {"queued": jobs, "in_slurm": in_slurm}


class Queue:
    """The benchmark's Celery queue on its own Redis database."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)

    def waiting(self) -> int:
        return int(self.client.llen(QUEUE))

    def send(self, name: str, n: int) -> None:
        from opos.celery import app

        for _ in range(n):
            app.send_task(name, queue=QUEUE)

    def purge(self) -> None:
        self.client.delete(QUEUE)


class Done(NamedTuple):
    """A task a worker logged as done: when (epoch seconds), how long, what it returned."""

    at: float
    seconds: float
    result: dict


def finished_tasks(folder: Path, workers: int, name: str) -> list[Done]:
    """Every ``name`` task the workers logged as done."""
    done = []
    for n in range(1, workers + 1):
        for line in (folder / f"worker{n}.log").read_text(errors="replace").splitlines():
            found = DONE_LINE.search(line)
            if found and found.group(3) == name:
                stamp, millis, _name, seconds, result = found.groups()
                at = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000
                done.append(Done(at, float(seconds), ast.literal_eval(result)))
    return done


def trial(args: argparse.Namespace, workers: int, folder: Path, redis: str) -> dict[str, Any]:
    campaign_ids = new_campaigns(args)
    expected = ready_jobs(campaign_ids)
    queue = Queue(redis)
    queue.purge()  # the launches' own kicks: the benchmark sends every task itself
    env = {
        **os.environ,
        **environment(folder, args.poll_per_endpoint),
        "CELERY_BROKER_URL": redis,
        "CELERY_RESULT_BACKEND": redis,
        "LOG_LEVEL": "INFO",
    }
    processes = Processes(workers, env, folder, beat=False)
    processes.start()
    try:
        # Submission: never an idle worker while jobs are ready (the queue is topped up
        # to two tasks a worker), and this process looks only every 0.1 s, so that its
        # own queries do not take the workers' CPU. The end is when the last array was
        # recorded, from the database.
        from django.db.models import Max

        from campaigns.models import Submission

        cpu_before = processes.worker_cpu()
        started = time.time()
        while True:
            waiting = queue.waiting()
            if waiting < workers:
                queue.send("campaigns.submit_ready", 2 * workers - waiting)
            time.sleep(0.1)
            if not ready_jobs(campaign_ids) and not (
                Submission.objects.filter(state="submitting").exists()
            ):
                break
            if time.time() - started > args.timeout:
                raise SystemExit(f"jobs still ready after {args.timeout:.0f} s ({folder})")
        submit_cpu = processes.worker_cpu() - cpu_before
        last = Submission.objects.filter(stage__campaign__in=campaign_ids).aggregate(
            last=Max("updated")
        )["last"]
        submit_s = last.timestamp() - started
        queue.purge()
        wait_idle(folder, workers, "campaigns.submit_ready", args.timeout)
        checked = exactly_once(campaign_ids, expected)

        # Poll: --polls tasks at once, the workers share them.
        cpu_before = processes.worker_cpu()
        started = time.time()
        queue.send("campaigns.poll", args.polls)
        polls = wait_done(folder, workers, "campaigns.poll", args.polls, args.timeout)
        poll_s = max(done.at for done in polls) - started
        poll_cpu = processes.worker_cpu() - cpu_before
    finally:
        processes.stop()
    polled = sum(done.result.get("polled", 0) for done in polls)
    errors = [e for done in polls for e in done.result.get("errors", [])]
    if errors:
        raise SystemExit(f"polls reported errors: {errors[:3]} ({folder})")
    cancel_all()
    return {
        "jobs": expected,
        "submit_s": round(submit_s, 2),
        "submitted_per_s": round(expected / submit_s, 1),
        "submit_cpu_ms_per_job": round(1000 * submit_cpu / expected, 3),
        "polls": len(polls),
        "jobs_polled": polled,
        "poll_s": round(poll_s, 2),
        "polled_per_s": round(polled / poll_s, 1),
        "poll_cpu_s": round(poll_cpu, 2),
        **checked,
    }


def wait_idle(folder: Path, workers: int, name: str, timeout: float) -> None:
    """Until every ``name`` task a worker took has ended (none left in the workers' hands)."""
    deadline = time.monotonic() + timeout
    while True:
        text = "".join(
            (folder / f"worker{n}.log").read_text(errors="replace") for n in range(1, workers + 1)
        )
        started = len(re.findall(rf"Task {re.escape(name)}\[[^\]]+\] received", text))
        ended = len(re.findall(rf"Task {re.escape(name)}\[[^\]]+\] (?:succeeded|raised)", text))
        if started == ended:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{started - ended} {name} tasks did not end ({folder})")
        time.sleep(0.1)


def wait_done(folder: Path, workers: int, name: str, count: int, timeout: float) -> list[Done]:
    """Until the ``count`` tasks sent and the per-endpoint tasks they sent have ended."""
    deadline = time.monotonic() + timeout
    while True:
        done = finished_tasks(folder, workers, name)
        sent_on = sum(len(d.result.get("per_endpoint", ())) for d in done)
        if len(done) >= count + sent_on:
            return done
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(done)} of {count} {name} tasks ended ({folder})")
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    slurm_ready()
    redis = redis_url(args, owner="bench/scaleout.py")
    root = data_dir() / "scaleout"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    # This process launches the campaigns (their kicks go to the benchmark's queue, which
    # each trial empties) and sends the tasks.
    setup_django(
        RUN_DB,
        CELERY_BROKER_URL=redis,
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        **environment(root / "setup"),
    )
    load_at_start = os.getloadavg()
    make_partitions()
    cancel_all()  # what an interrupted run left there
    try:
        prepare_base(RUN_DB, BASE_DB)
        runs: dict[int, list[dict[str, Any]]] = {n: [] for n in args.worker_counts}
        for repetition in range(args.repeat):
            for workers in args.worker_counts:
                folder = root / f"r{repetition}-w{workers}"
                folder.mkdir(parents=True)
                result = trial(args, workers, folder, redis)
                runs[workers].append(result)
                print(
                    f"run {repetition + 1}/{args.repeat}, {workers} worker(s): "
                    f"{result['submitted_per_s']} jobs submitted/s, "
                    f"{result['polled_per_s']} jobs polled/s",
                    flush=True,
                )
    finally:
        cancel_all()
        remove_partitions()
    summary = {
        str(workers): {
            "submitted_per_s": spread([r["submitted_per_s"] for r in results]),
            "polled_per_s": spread([r["polled_per_s"] for r in results]),
            "submit_cpu_ms_per_job": spread([r["submit_cpu_ms_per_job"] for r in results]),
        }
        for workers, results in runs.items()
        if results
    }
    base = summary.get(str(args.worker_counts[0]))
    for row in summary.values() if base else ():
        for rate, speedup in (
            ("submitted_per_s", "submit_speedup"),
            ("polled_per_s", "poll_speedup"),
        ):
            row[speedup] = round(row[rate]["median"] / base[rate]["median"], 2)
    result = {
        "jobs": args.jobs,
        "campaigns": args.campaigns,
        "endpoints": list(ENDPOINTS),
        "polls": args.polls,
        "poll_per_endpoint": args.poll_per_endpoint,
        "repeat": args.repeat,
        "load_average_at_start": load_at_start,
        "nproc": os.cpu_count(),
        "summary": summary,
        "runs": {str(k): v for k, v in runs.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    emit(result, args.out)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

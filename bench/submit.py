"""Benchmark 2: submitting 10,000 jobs of one stage to the real Slurm cluster.

    .venv/bin/python -m bench.submit --db bench8 [--jobs 10000] [--repeat 3] [--out r.json]

Ours is the real submit path, ``campaigns.execution.submission.submit_stage``: claim (one
transaction), write the array's job descriptions (``array.json`` and ``jobs.jsonl`` in the
array folder; element folders are made by the job shim when each element starts), one
``sbatch --array``, record (one transaction), each part timed at the protocol's checkpoints.
The floor is what no implementation can avoid: one transaction that claims the same
ready rows with ``SELECT ... FOR UPDATE SKIP LOCKED``, one ``sbatch --array`` of the same
shim and command from Python's subprocess, and one ``UPDATE ... FROM unnest(...)`` that
records the batch ids, then COMMIT. Then ours again with a site-like ``MaxArraySize``
(Slurm's default, 1001), which splits the submission into several arrays.

The jobs go to a partition of their own, created DOWN for the benchmark (``scontrol
create``, root only) and deleted afterwards, so nothing runs and other users of the
cluster are not queued behind 10,000 jobs; every array is cancelled (``scancel``) right
after its trial. The stage lives in its own experiment (``bench-submit``) in the
generated database, reset to 10,000 ready jobs before each trial and removed at the end.
Where /dev/shm exists, ours runs once more with the job folders there (``tmpfs``): the
difference from the first is what the disk costs, the rest is the code's.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import data_dir, db_url, emit, setup_django

PARTITION = "oposbench"
SITE_MAX_ARRAY_SIZE = 1001  # Slurm's default MaxArraySize


# --- the cluster ------------------------------------------------------------------------------


def slurm(*argv: str, check: bool = True) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False)
    if check and done.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def ensure_partition() -> tuple[str | None, bool]:
    """A DOWN partition for the benchmark: (its name, whether we created it).

    None when it cannot be made (not root): the jobs then go to the default partition
    and may start before they are cancelled.
    """
    if (
        slurm("scontrol", "show", "partition", PARTITION, check=False)
        .strip()
        .startswith("PartitionName=")
    ):
        return PARTITION, False
    nodes = slurm("sinfo", "-h", "-o", "%N").split()[0]
    try:
        slurm("scontrol", "create", f"PartitionName={PARTITION}", f"Nodes={nodes}", "State=DOWN")
    except RuntimeError as exc:
        print(f"no benchmark partition ({exc}); using the default one", file=sys.stderr)
        return None, False
    return PARTITION, True


def cancel(array_ids: set[str]) -> None:
    if array_ids:
        slurm("scancel", *sorted(array_ids), check=False)


def listed_tasks(array_ids: set[str]) -> int:
    """Tasks Slurm holds for these arrays (pending arrays expanded)."""
    if not array_ids:
        return 0
    out = slurm("squeue", "-h", "-r", "-o", "%i", "-j", ",".join(sorted(array_ids)), check=False)
    return len(out.split())


# --- the stage to submit ------------------------------------------------------------------------


def bench_stage(n: int):
    """The benchmark's stage with ``n`` jobs (made on first use), reset to all ready."""
    import datetime as dt

    from django.db import connection, transaction
    from django.utils import timezone

    from campaigns.models import Campaign, Dataset, Stage, Submission
    from experiments.models import Experiment, PhysicsGroup, ProductionCode, WorkflowTemplate
    from requests_app.models import ProductionRequest, Sample

    with transaction.atomic():
        experiment, _ = Experiment.objects.get_or_create(
            slug="bench-submit", defaults={"name": "Submission benchmark", "job_quota": 100_000}
        )
        name = f"submission benchmark {n}"
        stage = Stage.objects.filter(campaign__experiment=experiment, campaign__name=name).first()
        if stage is None:
            owner = ProductionRequest.objects.values_list("requester_id", flat=True).first()
            group, _ = PhysicsGroup.objects.get_or_create(
                experiment=experiment, slug="bench", defaults={"name": "Bench"}
            )
            code, _ = ProductionCode.objects.get_or_create(
                experiment=experiment,
                name="gen",
                version="1",
                defaults={
                    "location": str(Path(__file__).resolve()),
                    "sha256": "0" * 64,
                    "approved": True,
                },
            )
            template, _ = WorkflowTemplate.objects.get_or_create(experiment=experiment, name="gen")
            long_ago = timezone.now() - dt.timedelta(days=900)
            request = ProductionRequest.objects.create(
                number=f"REQ-1999-{n:05d}",
                ticket="RITM9999999",
                experiment=experiment,
                physics_group=group,
                requester_id=owner,
                title="Submission benchmark",
                deadline=timezone.localdate() + dt.timedelta(days=365),
                state="in_production",
            )
            # Far down the request list: the page benchmark must not see it first.
            ProductionRequest.objects.filter(pk=request.pk).update(created=long_ago)
            sample = Sample.objects.create(
                request=request,
                name="bench",
                template=template,
                events=n * 100,
                events_per_job=100,
                output_dataset=f"bench-submit:{n}",
            )
            campaign = Campaign.objects.create(
                experiment=experiment,
                name=name,
                deadline=timezone.localdate() + dt.timedelta(days=365),
                state="active",
                backend="slurm",
            )
            dataset = Dataset.objects.create(
                experiment=experiment, campaign=campaign, name=f"bench-submit:{n}"
            )
            stage = Stage.objects.create(
                campaign=campaign,
                request=request,
                sample=sample,
                position=0,
                name="gen",
                code=code,
                code_sha256="0" * 64,
                code_location=str(Path(__file__).resolve()),
                split="events",
                events_per_job=100,
                output_dataset=dataset,
                jobs_total=n,
            )
            with connection.cursor() as cursor:
                cursor.execute(
                    """
                    INSERT INTO campaigns_job (stage_id, index, attempt, state, events_first,
                        events, input_count, input_files, backend, batch_id, failure_class,
                        failure_reason, workdir, outcome)
                    SELECT %s, i, 1, 'ready', i * 100, 100, 0, '[]', '', '', '', '', '', ''
                    FROM generate_series(0, %s - 1) AS i
                    """,
                    [stage.pk, n],
                )
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE campaigns_job")
        if stage.jobs_total != n:
            raise SystemExit(f"the benchmark stage has {stage.jobs_total} jobs, not {n}")
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE campaigns_job SET state = 'ready', submission_id = NULL, batch_id = '',
                    backend = '', workdir = '', queued_at = NULL, state_since = NULL
                WHERE stage_id = %s AND (state <> 'ready' OR submission_id IS NOT NULL
                    OR batch_id <> '')
                """,
                [stage.pk],
            )
        Submission.objects.filter(stage=stage).delete()
        Stage.objects.filter(pk=stage.pk).update(n_ready=n, n_queued=0, n_planned=0)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM campaigns_job")
    return Stage.objects.select_related("campaign").get(pk=stage.pk)


def remove_bench_experiment() -> None:
    """Take every row this benchmark added out of the generated database again."""
    from django.db import connection, transaction

    from campaigns.models import Campaign, Dataset, Stage, Submission
    from experiments.models import Experiment, PhysicsGroup, ProductionCode, WorkflowTemplate
    from requests_app.models import ProductionRequest, Sample

    experiment = Experiment.objects.filter(slug="bench-submit").first()
    if experiment is None:
        return
    with transaction.atomic():
        stages = list(
            Stage.objects.filter(campaign__experiment=experiment).values_list("pk", flat=True)
        )
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM campaigns_job WHERE stage_id = ANY(%s)", [stages])
        Submission.objects.filter(stage_id__in=stages).delete()
        Stage.objects.filter(pk__in=stages).delete()
        Dataset.objects.filter(experiment=experiment).delete()
        Campaign.objects.filter(experiment=experiment).delete()
        Sample.objects.filter(request__experiment=experiment).delete()
        ProductionRequest.objects.filter(experiment=experiment).delete()
        WorkflowTemplate.objects.filter(experiment=experiment).delete()
        ProductionCode.objects.filter(experiment=experiment).delete()
        PhysicsGroup.objects.filter(experiment=experiment).delete()
        experiment.delete()


TMPFS = Path("/dev/shm")  # noqa: S108 - memory-backed, to tell the disk's share from ours


def work_dir(variant: str) -> Path:
    """The job folders' area: the benchmark's data folder on disk, or tmpfs for "tmpfs"."""
    if variant == "tmpfs":
        return TMPFS / "opos-bench-work"
    return data_dir() / "work"


def configure(partition: str | None, max_array_size: int | None, variant: str = "ours") -> None:
    from django.conf import settings

    from campaigns.execution import backends

    settings.OPOS_WORK_DIR = work_dir(variant)
    settings.OPOS_BACKEND_OPTIONS = {
        **settings.OPOS_BACKEND_OPTIONS,
        "slurm": {
            "state_dir": str(data_dir() / "slurm-state"),
            "partition": partition,
            "max_array_size": max_array_size,
            "timeout": 300,
        },
    }
    backends._built.clear()


def clean_work() -> None:
    for variant in ("ours", "tmpfs"):
        shutil.rmtree(work_dir(variant), ignore_errors=True)


# --- ours and the floor -------------------------------------------------------------------------


def ours(stage, n: int) -> tuple[float, dict[str, float], set[str]]:
    """submit_stage with the checkpoints timed; returns seconds, parts, Slurm array ids."""
    from campaigns.execution import submission
    from campaigns.models import Job

    marks: list[tuple[str, float]] = []
    submission.crash_hook = lambda name: marks.append((name, time.perf_counter()))
    start = time.perf_counter()
    try:
        done = submission.submit_stage(stage.pk, n)
    finally:
        submission.crash_hook = None
    seconds = time.perf_counter() - start
    ids = list(Job.objects.filter(stage=stage, state="queued").values_list("batch_id", flat=True))
    arrays = {b.split("_", 1)[0] for b in ids}
    if sum(s.size for s in done) != n or len(set(ids)) != n:
        cancel(arrays)
        raise SystemExit(f"ours queued {len(set(ids))} distinct jobs, expected {n}")
    parts, last = {}, start
    for name, at in marks:
        parts[name] = at - last
        last = at
    return seconds, parts, arrays


def floor(stage, n: int, partition: str | None) -> tuple[float, set[str]]:
    """One claiming transaction, one sbatch --array of the same shim and command, one
    UPDATE ... FROM unnest(...) of the batch ids, COMMIT."""
    import psycopg

    from campaigns.batch.base import job_environment
    from campaigns.batch.slurm import JOB_SHIM
    from campaigns.execution import backends

    argv_job = backends.job_argv()
    env_job = backends.job_environment()
    token = f"bench-floor-{time.time_ns()}"
    array_dir = data_dir() / "work" / "floor" / token
    with psycopg.connect(db_url(ARGS.db)) as conn:
        start = time.perf_counter()
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM campaigns_job WHERE stage_id = %s AND state = 'ready' "
                "AND submission_id IS NULL ORDER BY index, id LIMIT %s "
                "FOR UPDATE SKIP LOCKED",
                [stage.pk, n],
            )
        ]
        array_dir.mkdir(parents=True)
        argv = [
            "sbatch",
            "--parsable",
            f"--array=0-{len(ids) - 1}",
            f"--job-name={token}",
            f"--comment={token}:0:{len(ids)}",
            f"--chdir={array_dir}",
            f"--output={array_dir}/logs/%A_%a.out",
            f"--error={array_dir}/logs/%A_%a.err",
            "--ntasks=1",
            f"--cpus-per-task={stage.cores}",
            f"--mem={stage.memory_mb}M",
            "--time=1:00:00",
            "--export=ALL",
            *([f"--partition={partition}"] if partition else []),
            str(JOB_SHIM),
            *argv_job,
        ]
        env = job_environment(
            {**env_job, "OPOS_ARRAY_DIR": str(array_dir), "OPOS_ARRAY_OFFSET": "0"}
        )
        out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
        job_id = out.strip().split(";", 1)[0]
        batch_ids = [f"{job_id}_{task}" for task in range(len(ids))]
        conn.execute(
            "UPDATE campaigns_job j SET state = 'queued', batch_id = v.batch_id, "
            "backend = 'slurm', queued_at = now(), state_since = now() "
            "FROM unnest(%s::bigint[], %s::text[]) AS v(id, batch_id) WHERE j.id = v.id",
            [ids, batch_ids],
        )
        conn.commit()
        seconds = time.perf_counter() - start
    if len(ids) != n:
        cancel({job_id})
        raise SystemExit(f"the floor claimed {len(ids)} jobs, expected {n}")
    return seconds, {job_id}


def summary(times: list[float]) -> dict[str, Any]:
    return {
        "median_s": statistics.median(times),
        "best_s": min(times),
        "runs": [round(t, 4) for t in times],
    }


TRIES = 3


def trial(variant: str, n: int, partition: str | None) -> tuple[float, dict | None, set[str]]:
    """One timed submission of ``n`` jobs: seconds, the parts of ours, the Slurm arrays."""
    stage = bench_stage(n)
    clean_work()
    if variant == "floor":
        configure(partition, None)
        seconds, arrays = floor(stage, n, partition)
        return seconds, None, arrays
    size = SITE_MAX_ARRAY_SIZE if variant == "split" else None
    configure(partition, size, variant)
    return ours(stage, n)


def wait_for_cluster(timeout: float = 180) -> tuple[str | None, bool]:
    """Wait until the controller answers again; the benchmark partition may need remaking
    (partitions made with scontrol do not survive a restart with a clean state)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = slurm("sinfo", "-h", "-o", "%t", check=False)
        if any(state in states for state in ("idle", "mix", "alloc")):
            return ensure_partition()
        time.sleep(3)
    raise SystemExit("the Slurm cluster did not come back")


def run() -> dict[str, Any]:
    n = ARGS.jobs
    from campaigns.batch import BackendError

    partition, created = ensure_partition()
    out: dict[str, Any] = {"jobs": n, "partition": partition or "(default)"}
    variants = ["ours", "floor", "split"] + (["tmpfs"] if TMPFS.is_dir() else [])
    times: dict[str, list[float]] = {name: [] for name in variants}
    parts: dict[str, list[dict[str, float]]] = {name: [] for name in variants if name != "floor"}
    seen: dict[str, Any] = {}
    out["retried_trials"] = []
    try:
        for k in range(ARGS.repeat + 1):  # the first round warms up, untimed
            for variant in variants:
                for attempt in range(TRIES):
                    try:
                        seconds, split, arrays = trial(variant, n, partition)
                        break
                    except (BackendError, subprocess.CalledProcessError) as exc:
                        # Other users of this cluster restart it now and then (tests of
                        # scripts/slurm): wait for it, make the partition again, retry.
                        out["retried_trials"].append(f"{variant}: {exc}"[:300])
                        if attempt == TRIES - 1:
                            raise
                        partition, made = wait_for_cluster()
                        created = created or made
                if k and split is not None:
                    parts[variant].append(split)
                tasks = listed_tasks(arrays)
                cancel(arrays)
                seen[variant] = {"arrays": len(arrays), "tasks_listed_by_slurm": tasks}
                if k:
                    times[variant].append(seconds)
    finally:
        remove_bench_experiment()
        clean_work()
        if partition == PARTITION:
            # Whatever a failed trial may have left there: the partition is ours alone.
            slurm("scancel", "--partition", PARTITION, check=False)
        if created:
            # Arrays cancelled above may still be completing; the partition goes once empty.
            for _ in range(30):
                if not slurm("squeue", "-h", "-p", PARTITION, check=False).strip():
                    break
                time.sleep(1)
            slurm("scontrol", "delete", f"PartitionName={PARTITION}", check=False)
    for variant, values in times.items():
        out[variant] = summary(values)
        out[variant] |= seen.get(variant, {})
        if parts.get(variant):
            out[variant]["parts"] = {
                name: statistics.median(p[name] for p in parts[variant])
                for name in parts[variant][0]
            }
    out["site_max_array_size"] = SITE_MAX_ARRAY_SIZE
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="bench8")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", help="write the figures here as JSON")
    return parser.parse_args(argv)


ARGS: argparse.Namespace


def main(argv: list[str] | None = None) -> None:
    global ARGS
    ARGS = parse_args(argv)
    if shutil.which("sbatch") is None:
        raise SystemExit("no sbatch: start the cluster with scripts/slurm/up.sh")
    setup_django(ARGS.db)
    figures = run()
    emit(figures, ARGS.out)


if __name__ == "__main__":
    main()

"""One fault trial: a small campaign on real services, a fault in the middle, then the checks.

Run by ``tests/faults/test_faults.py`` in a process of its own (its environment names the
trial's PostgreSQL, Redis, work area and batch shims)::

    python -m tests.faults.driver SCENARIO --folder DIR --jobs N --kills K --seed S

It migrates its database (a copy of one the tests migrated once, so there is usually
nothing left to do), files and launches a campaign of the demo workflow
(generation -> simulation -> reconstruction, ``N`` jobs per stage) on Slurm, starts Celery
beat and two workers (``--workers W`` for more; the last of three or more runs a pool of
two processes, so that processes of one worker race as well as workers), injects the fault
when a quarter of the work is done, waits for the campaign to complete, and writes
``report.json``: the outcome of every check, the recovery time after each fault, and the
counts. It never raises for a failed check: the report says.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = (
    "none",
    "worker_kill",
    "redis_restart",
    "postgres_restart",
    "slurmctld_stop",
    "batch_hang",
    "disk_full",
)
TARGET_TASKS = ("campaigns.submit_ready", "campaigns.poll", "campaigns.finalize")


@dataclass
class Process:
    """A Celery worker or beat, restartable, logging to a file."""

    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen | None = None
    starts: int = 0

    def start(self) -> None:
        out = self.log.open("a")
        self.popen = subprocess.Popen(
            self.argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL, as an out-of-memory killer or a pulled plug would."""
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "opos", *args]


@dataclass
class Trial:
    scenario: str
    folder: Path
    jobs: int
    kills: int
    seed: int
    timeout: float
    worker_count: int = 2
    rng: random.Random = field(init=False)
    events: list[dict] = field(default_factory=list)
    workers: list[Process] = field(default_factory=list)
    beat: Process | None = None
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self):
        self.rng = random.Random(self.seed)

    # --- set-up ----------------------------------------------------------------------------

    def setup_campaign(self, backend: str, name: str, jobs: int):
        from django.contrib.auth import get_user_model

        from campaigns.services import campaign_action, create_campaign, schedule_requests
        from experiments.models import Experiment
        from tests.campaigns.exec_support import demo_template
        from tests.campaigns.factories import approved_request
        from tests.factories import ExperimentFactory, UserFactory, grant

        experiment = Experiment.objects.filter(slug="faults").first() or ExperimentFactory(
            slug="faults", name="Faults"
        )
        User = get_user_model()
        operator = User.objects.filter(username="fault-operator").first() or grant(
            UserFactory(username="fault-operator"), "operator"
        )
        template = demo_template(experiment)
        per_job = 50
        request = approved_request(
            experiment, template=template, events=jobs * per_job, per_job=per_job
        )
        campaign = create_campaign(
            operator, experiment, name=name, deadline=request.deadline, backend=backend
        )
        schedule_requests(campaign, [request.pk], operator)
        campaign_action(campaign, "launch", operator)
        return campaign, request

    def start_processes(self) -> None:
        logs = self.folder / "logs"
        logs.mkdir(exist_ok=True)
        self.beat = Process(
            "beat",
            celery("beat", "-s", str(self.folder / "beat-schedule"), "--loglevel", "INFO"),
            logs / "beat.log",
        )
        self.beat.start()
        for n in range(1, self.worker_count + 1):
            # Three or more: the last one a pool of two processes.
            pool = ["--pool", "prefork", "--concurrency", "2"]
            if self.worker_count < 3 or n < self.worker_count:
                pool = ["--pool", "solo"]
            worker = Process(
                f"worker{n}",
                celery(
                    "worker",
                    *pool,
                    "--without-mingle",
                    "--without-gossip",
                    "--loglevel",
                    "INFO",
                    "--hostname",
                    f"w{n}@%h",
                ),
                logs / f"worker{n}.log",
            )
            worker.start()
            self.workers.append(worker)

    def stop_processes(self) -> None:
        for process in [*self.workers, self.beat]:
            if process is not None:
                process.stop()

    def tasks_by_worker(self) -> dict[str, dict[str, int]]:
        """How many submit, poll and finalize tasks each worker finished (its log says)."""
        counts = {}
        for worker in self.workers:
            text = worker.log.read_text(errors="replace") if worker.log.exists() else ""
            counts[worker.name] = {
                task.rsplit(".", 1)[1]: len(
                    re.findall(rf"Task {re.escape(task)}\[[^\]]+\] succeeded", text)
                )
                for task in TARGET_TASKS
            }
        return counts

    # --- progress ----------------------------------------------------------------------------

    def succeeded(self, campaign) -> int:
        from django.db import connection

        from campaigns.choices import JobState
        from campaigns.models import Job

        for _attempt in range(30):  # the database may be the thing being restarted
            try:
                return Job.objects.filter(
                    stage__campaign=campaign, state=JobState.SUCCEEDED
                ).count()
            except Exception:
                connection.close()
                time.sleep(1)
        raise RuntimeError("the database did not come back")

    def wait_progress(self, campaign, fraction: float) -> None:
        total = 3 * self.jobs
        deadline = time.monotonic() + self.timeout
        while self.succeeded(campaign) < fraction * total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {fraction:.0%} progress in {self.timeout:.0f}s")
            time.sleep(0.5)

    def recovery(self, campaign, since: float, label: str, limit: float = 600) -> None:
        """Seconds from the end of a fault until the next job of the campaign succeeds."""
        base = self.succeeded(campaign)
        deadline = time.monotonic() + limit
        while self.succeeded(campaign) <= base and time.monotonic() < deadline:
            if self.done(campaign):
                break
            time.sleep(0.25)
        self.events.append({"fault": label, "recovery_s": round(time.monotonic() - since, 1)})

    def done(self, campaign) -> bool:
        from django.db import connection

        from campaigns.models import Campaign

        try:
            return Campaign.objects.get(pk=campaign.pk).state in ("completed", "cancelled")
        except Exception:
            connection.close()
            return False

    def wait_done(self, *campaigns) -> float:
        deadline = self.started + self.timeout
        while not all(self.done(c) for c in campaigns):
            if time.monotonic() > deadline:
                raise TimeoutError(f"campaign not completed in {self.timeout:.0f}s")
            for worker in self.workers:  # a worker that died by itself is a finding
                if worker.popen.poll() is not None:
                    self.events.append({"fault": f"{worker.name} exited by itself: restarted"})
                    worker.start()
            time.sleep(1)
        return time.monotonic() - self.started

    # --- faults ------------------------------------------------------------------------------

    def _log_offsets(self) -> list[int]:
        return [w.log.stat().st_size if w.log.exists() else 0 for w in self.workers]

    def kill_workers(self, campaign) -> None:
        """SIGKILL a worker while it runs submit, poll or finalize (seeded), ``kills`` times."""
        done = 0
        for i in range(self.kills):
            if self.done(campaign):
                break
            target = TARGET_TASKS[i % len(TARGET_TASKS)]
            offsets = self._log_offsets()
            victim = None
            deadline = time.monotonic() + 30
            while victim is None and time.monotonic() < deadline:
                for worker, offset in zip(self.workers, offsets, strict=True):
                    with worker.log.open("rb") as fh:
                        fh.seek(offset)
                        if f"Task {target}[".encode() in fh.read():
                            victim = worker
                            break
                time.sleep(0.05)
            if victim is None:
                continue
            time.sleep(self.rng.uniform(0.0, 0.15))  # somewhere inside the task
            victim.kill()
            killed_at = time.monotonic()
            time.sleep(self.rng.uniform(0.0, 1.0))
            victim.start()
            done += 1
            self.events.append({"fault": f"SIGKILL {victim.name} in {target}", "at": i})
            if i % 5 == 4:
                self.recovery(campaign, killed_at, f"after kill {i + 1}", limit=120)
        self.events.append({"fault": "worker kills done", "count": done})

    def inject(self, campaign, services: dict, other=None) -> None:
        scenario = self.scenario
        if scenario == "none":
            return
        if scenario == "worker_kill":
            self.kill_workers(campaign)
            return
        hold = float(os.environ.get("OPOS_FAULT_HOLD_S", "20"))
        if scenario == "redis_restart":
            from tests.faults.services import Redis

            redis = Redis(Path(services["redis_folder"]), port=services["redis_port"])
            redis.shutdown()
            time.sleep(3)
            redis.start()
            end = time.monotonic()
            self.events.append({"fault": "redis shutdown nosave, down 3 s"})
        elif scenario == "postgres_restart":
            from tests.faults.services import Postgres

            Postgres(Path(services["pg_folder"]), port=services["pg_port"]).restart()
            end = time.monotonic()
            self.events.append({"fault": "postgres restart -m fast"})
        elif scenario == "slurmctld_stop":
            from tests.faults.services import Slurm

            slurm = Slurm()
            slurm.stop_controller()
            time.sleep(hold)
            slurm.start_controller()
            end = time.monotonic()
            self.events.append({"fault": f"slurmctld stopped for {hold:.0f} s"})
        elif scenario == "batch_hang":
            flag = Path(services["hang_flag"])
            flag.touch()
            other_before = self.succeeded(other)
            other_left = 3 * max(self.jobs, 8) - other_before
            time.sleep(hold)
            other_during = self.succeeded(other) - other_before
            flag.unlink()
            end = time.monotonic()
            self.events.append(
                {
                    "fault": f"squeue hangs for {hold:.0f} s",
                    "local_campaign_jobs_left_at_start": other_left,
                    "local_campaign_jobs_done_meanwhile": other_during,
                }
            )
        elif scenario == "disk_full":
            from tests.faults.services import TinyFilesystem

            area = TinyFilesystem(Path(services["fs_folder"]))
            area.fill()
            time.sleep(hold)
            area.free()
            end = time.monotonic()
            self.events.append({"fault": f"output area full for {hold:.0f} s"})
        else:
            raise ValueError(scenario)
        self.recovery(campaign, end, f"after {scenario}")


# --- the checks ------------------------------------------------------------------------------


def squeue_records() -> list[dict]:
    """What Slurm itself holds (finished jobs stay listed for MinJobAge, 300 s)."""
    done = subprocess.run(["squeue", "--json"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return []
    return json.loads(done.stdout).get("jobs", [])


def check(campaign, request, shims_log: Path | None, scenario: str) -> dict:
    from django.db.models import Count

    from campaigns.choices import JobState
    from campaigns.models import Job, OutputFile, Stage, Submission
    from campaigns.services import recount_stages
    from requests_app.models import ProductionRequest

    checks: dict[str, object] = {}
    jobs = list(
        Job.objects.filter(stage__campaign=campaign).values(
            "id", "stage_id", "index", "attempt", "state", "batch_id", "failure_class", "backend"
        )
    )
    by_index: dict[tuple[int, int], list[dict]] = {}
    for job in jobs:
        by_index.setdefault((job["stage_id"], job["index"]), []).append(job)
    final_states = {"succeeded", "failed", "cancelled"}
    not_final = [
        k
        for k, a in by_index.items()
        if max(a, key=lambda j: j["attempt"])["state"] not in final_states
    ]
    twice = [k for k, a in by_index.items() if sum(j["state"] == JobState.SUCCEEDED for j in a) > 1]
    planned = sum(s.jobs_total for s in Stage.objects.filter(campaign=campaign))
    checks["every planned job ends in a final state"] = not not_final and len(by_index) == planned
    checks["no job succeeded twice"] = not twice
    batch_ids = Counter(j["batch_id"] for j in jobs if j["batch_id"])
    checks["no batch id on two jobs"] = all(n == 1 for n in batch_ids.values())

    # The batch system's side: every sbatch call, by token and offset (chunk), at most once.
    submissions = {s.token: s for s in Submission.objects.filter(stage__campaign=campaign)}
    calls_ok = True
    submitted: Counter = Counter()
    if shims_log is not None and campaign.backend == "slurm":
        from tests.faults.services import Shims

        shims = Shims(shims_log.parent)
        for rc, _answer, args in shims.calls():
            name = re.search(r"--job-name[= ](\S+)", args)
            comment = re.search(r"--comment[= ](\S+)", args)
            if rc != 0 or not name or name.group(1) not in submissions:
                continue
            token, offset, size = (
                [*comment.group(1).split(":"), "0", "0"][:3]
                if comment
                else (name.group(1), "0", "0")
            )
            submitted[(token, int(offset))] += 1
            submitted[(token, "elements")] += int(size)
        calls_ok = all(n == 1 for key, n in submitted.items() if key[1] != "elements")
        sizes_ok = all(
            submitted[(t, "elements")] == s.size for t, s in submissions.items() if s.batch_id
        )
        checks["no array submitted twice (sbatch log)"] = calls_ok
        checks["batch system holds exactly the recorded jobs (sbatch log)"] = sizes_ok
        tasks: Counter = Counter()
        arrays: dict[str, set] = {}
        for record in squeue_records():
            if record.get("name") in submissions:
                task = record.get("array_task_id")
                task = task.get("number") if isinstance(task, dict) else task
                comment = record.get("comment") or ""
                tasks[(record["name"], comment, task)] += 1
                arrays.setdefault(comment, set()).add(record.get("array_job_id"))
        checks["no task listed twice by squeue"] = all(n == 1 for n in tasks.values())
        # One array job per token and chunk: what Slurm itself holds, not what we recorded.
        checks["one Slurm array per token and chunk (squeue)"] = all(
            len(ids) == 1 for ids in arrays.values()
        )
        checks["squeue lists our tasks (the check above saw them)"] = len(tasks) > 0
        checks["sbatch log has our arrays"] = bool(submitted)

    outputs = list(
        OutputFile.objects.filter(dataset__campaign=campaign).values("job_id", "path", "checksum")
    )
    succeeded_ids = {j["id"] for j in jobs if j["state"] == JobState.SUCCEEDED}
    per_job = Counter(o["job_id"] for o in outputs)
    checks["no output declared twice"] = all(n == 1 for n in per_job.values()) and len(
        {o["path"] for o in outputs}
    ) == len(outputs)
    checks["outputs only of succeeded jobs"] = set(per_job) <= succeeded_ids
    import hashlib

    intact = all(
        Path(o["path"]).exists()
        and hashlib.sha256(Path(o["path"]).read_bytes()).hexdigest() == o["checksum"]
        for o in outputs
    )
    checks["every declared output is whole (sha256)"] = intact
    campaign.refresh_from_db()
    request = ProductionRequest.objects.get(pk=request.pk)
    checks["request completed"] = request.state == "completed"
    checks["campaign completed"] = campaign.state == "completed"
    stages = list(Stage.objects.filter(campaign=campaign).order_by("pk"))
    kept = [s.counts() for s in stages]
    recount_stages([s.pk for s in stages])
    checks["stage counters match the jobs"] = kept == [
        s.counts() for s in Stage.objects.filter(campaign=campaign).order_by("pk")
    ]
    failures = Counter(j["failure_class"] for j in jobs if j["state"] in ("failed", "lost"))
    if scenario == "slurmctld_stop" or scenario == "batch_hang":
        # An unreachable or hanging controller fails nothing.
        checks["no job failed or lost because the controller did not answer"] = not failures
    if scenario == "disk_full":
        checks["a full output area fails jobs with class storage, nothing else"] = set(
            failures
        ) <= {"storage"}
    return {
        "checks": checks,
        "ok": all(checks.values()),
        "jobs_planned": planned,
        "attempts": len(jobs),
        "failures": dict(failures),
        "submissions": Submission.objects.filter(stage__campaign=campaign).count(),
        "submission_states": dict(
            Submission.objects.filter(stage__campaign=campaign)
            .values_list("state")
            .annotate(n=Count("id"))
        ),
    }


def where_it_stood() -> dict:
    """What the database held when a trial failed: campaigns, jobs by stage, state and
    whether their end is recorded, submissions by state (so a stall can be read from the
    report alone; the trial's folder is removed after the test)."""
    from django.db import connection
    from django.db.models import Count

    from campaigns.models import Campaign, Job, Submission

    try:
        jobs = (
            Job.objects.values("stage__name", "state", "outcome")
            .annotate(n=Count("id"))
            .order_by("stage__name", "state", "outcome")
        )
        return {
            "campaigns": list(Campaign.objects.values_list("name", "state")),
            "jobs": [
                f"{j['stage__name']} {j['state']}{'/' + j['outcome'] if j['outcome'] else ''}: "
                f"{j['n']}"
                for j in jobs
            ],
            "submissions": dict(
                Submission.objects.values_list("state").annotate(n=Count("id")).order_by()
            ),
        }
    except Exception as exc:
        connection.close()
        return {"unreadable": f"{type(exc).__name__}: {exc}"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--folder", required=True, type=Path)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (at least 1)")
    parser.add_argument("--services", required=True, help="JSON: ports and folders")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opos.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    services = json.loads(args.services)
    trial = Trial(
        args.scenario, args.folder, args.jobs, args.kills, args.seed, args.timeout, args.workers
    )
    report: dict = {
        "scenario": args.scenario,
        "jobs_per_stage": args.jobs,
        "seed": args.seed,
        "workers": args.workers,
    }
    try:
        campaign, request = trial.setup_campaign("slurm", "faults-slurm", args.jobs)
        other = None
        if args.scenario == "batch_hang":
            other_campaign, _ = trial.setup_campaign("local", "faults-local", max(args.jobs, 8))
            other = other_campaign
        trial.start_processes()
        # Kills start with the first arrays (there are many, they need the whole run); so
        # does the hang, while the local campaign beside it still has work to go on with
        # (at a quarter of the Slurm work it could already be done, proving nothing); the
        # other faults strike when a quarter of the work is done.
        early = args.scenario in ("worker_kill", "batch_hang")
        trial.wait_progress(campaign, 0.02 if early else 0.25)
        trial.inject(campaign, services, other)
        report["duration_s"] = round(trial.wait_done(campaign, *([other] if other else [])), 1)
        shims_log = Path(services["sbatch_log"]) if services.get("sbatch_log") else None
        report.update(check(campaign, request, shims_log, args.scenario))
    except Exception as exc:  # the report carries it; the test fails on it
        report.update({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        report["stood"] = where_it_stood()
    finally:
        trial.stop_processes()
    report["events"] = trial.events
    report["restarts"] = {w.name: w.starts - 1 for w in trial.workers}
    report["tasks_by_worker"] = trial.tasks_by_worker()
    (args.folder / "report.json").write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

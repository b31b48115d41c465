"""Shared set-up of the execution tests: the real demo workflow, launched campaigns, cycles.

Import the fixtures into a test module (``from tests.campaigns.exec_support import
exec_env``) to have them collected there.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from campaigns.batch import BackendUnavailable, BatchState, JobStatus
from campaigns.choices import JobState
from campaigns.execution import finalize, polling, submission
from campaigns.models import Campaign, Job, Stage
from campaigns.services import campaign_action, create_campaign, recount_stages, schedule_requests
from experiments.models import SplitRule
from requests_app.models import ProductionRequest
from tests.campaigns.factories import approved_request, code_owner
from tests.factories import ProductionCodeFactory, StageTemplateFactory, WorkflowTemplateFactory

DEMO = Path(django_settings.BASE_DIR) / "demo" / "workflow"
DEMO_STAGES = [
    # name, script, split, files per job, parameters
    (
        "generation",
        "generate.py",
        SplitRule.EVENTS,
        None,
        {
            "seed": {"type": "int", "default": 1, "min": 1, "max": 1000},
            "energy_gev": {"type": "float", "default": 2.5, "min": 0.1, "max": 100.0},
        },
    ),
    ("simulation", "simulate.py", SplitRule.FILES, 1, {}),
    ("reconstruction", "reconstruct.py", SplitRule.FILES, 1, {}),
]


@pytest.fixture
def exec_env(settings, tmp_path):
    """Backends and retries sized for tests; everything under the test's tmp folder."""
    settings.OPOS_BACKEND_OPTIONS = {
        "local": {"slots": 4, "spool_dir": str(tmp_path / "spool"), "kill_grace_s": 2.0},
        "slurm": {"state_dir": str(tmp_path / "slurm-state"), "timeout": 60},
        "htcondor": {},
    }
    settings.OPOS_BACKEND_CAPACITY = {"local": 8, "slurm": 50, "htcondor": 10}
    settings.OPOS_RETRY_BACKOFF_S = 0
    settings.OPOS_MAX_ATTEMPTS = 3
    return tmp_path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def register(experiment, path: Path, name: str | None = None):
    """Registered, approved production code for ``path``, owned by the experiment's liaison."""
    code = ProductionCodeFactory(
        experiment=experiment,
        name=name or f"{path.stem}-{experiment.slug}",
        location=str(path),
        sha256=sha256(path),
        approved=True,
    )
    code.owners.set([code_owner(experiment)])
    return code


def demo_template(experiment, stages=DEMO_STAGES, scripts: dict[str, Path] | None = None):
    """The demo generation -> simulation -> reconstruction template, with real code."""
    template = WorkflowTemplateFactory(experiment=experiment)
    previous = None
    for position, (name, script, split, per_file, params) in enumerate(stages):
        path = (scripts or {}).get(name, DEMO / script)
        previous = StageTemplateFactory(
            template=template,
            position=position,
            name=name,
            code=register(experiment, path, f"{name}-{template.pk}"),
            split=split,
            files_per_job=per_file,
            walltime_s=60,
            memory_mb=500,
            input_stage=previous,
            parameters=params,
        )
    return template


def launch(
    experiment, operator, *, events=600, per_job=200, backend="local", template=None, **kw
) -> tuple[Campaign, ProductionRequest]:
    """An approved request scheduled into a new, launched campaign."""
    template = template or demo_template(experiment)
    request = approved_request(experiment, template=template, events=events, per_job=per_job, **kw)
    campaign = create_campaign(
        operator,
        experiment,
        name=f"run-{request.pk}",
        deadline=request.deadline,
        backend=backend,
    )
    schedule_requests(campaign, [request.pk], operator)
    campaign_action(campaign, "launch", operator)
    return campaign, request


def cycle() -> None:
    """One round of the beat tasks, called as services."""
    submission.submit_ready()
    polling.poll()
    finalize.finalize_outcomes()


def run_until(done: Callable[[], bool], timeout: float = 120.0, pause: float = 0.3) -> int:
    """Run cycles until ``done()`` (bounded); return the number of cycles."""
    deadline = time.monotonic() + timeout
    cycles = 0
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"not done after {cycles} cycles / {timeout}s: {jobs_by_state()}")
        cycle()
        cycles += 1
        time.sleep(pause)
    return cycles


def jobs_by_state(**filters) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in Job.objects.filter(**filters).values_list("state", flat=True):
        counts[state] = counts.get(state, 0) + 1
    return counts


def all_final(**filters) -> bool:
    return (
        not Job.objects.filter(**filters)
        .exclude(state__in=[JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.LOST])
        .exists()
    )


def assert_counters_match(campaign: Campaign) -> None:
    """The stage counters kept by the services equal a recount from the jobs."""
    stages = list(Stage.objects.filter(campaign=campaign).order_by("pk"))
    kept = [s.counts() for s in stages]
    recount_stages([s.pk for s in stages])
    recounted = [s.counts() for s in Stage.objects.filter(campaign=campaign).order_by("pk")]
    assert kept == recounted


class FakeBackend:
    """A batch system in memory: tests set each job's state; it counts its calls."""

    name = "local"

    def __init__(self) -> None:
        self.arrays: dict[str, int] = {}
        self.states: dict[str, JobStatus] = {}
        self.calls: Counter = Counter()
        self.unavailable = False
        self.cancelled: list[str] = []

    def submit(self, spec, start=0):
        self.calls["submit"] += 1
        if self.unavailable:
            raise BackendUnavailable("sbatch: error: Socket timed out on send/recv operation")
        self.arrays[spec.token] = spec.size
        ids = [f"fake:{spec.token}:{i}" for i in range(start, spec.size)]
        for batch_id in ids:
            self.states[batch_id] = JobStatus(BatchState.QUEUED)
        return ids

    def status(self, jobs):
        self.calls["status"] += 1
        if self.unavailable:
            raise BackendUnavailable("controller unreachable")
        return {j.batch_id: self.states[j.batch_id] for j in jobs if j.batch_id in self.states}

    def cancel(self, batch_ids):
        self.calls["cancel"] += 1
        self.cancelled += list(batch_ids)
        for batch_id in batch_ids:
            self.states[batch_id] = JobStatus(BatchState.CANCELLED, None, "cancelled")

    def find(self, token):
        self.calls["find"] += 1
        if self.unavailable:
            raise BackendUnavailable("controller unreachable")
        size = self.arrays.get(token, 0)
        return [f"fake:{token}:{i}" for i in range(size)]

    def set(self, jobs, state, exit_code=None, reason=""):
        for job in jobs:
            self.states[job.batch_id] = JobStatus(state, exit_code, reason)


@pytest.fixture
def fake_backend(monkeypatch):
    """Every backend name resolves to one in-memory FakeBackend."""
    from campaigns.execution import backends

    fake = FakeBackend()
    monkeypatch.setattr(backends, "backend", lambda name: fake)
    return fake

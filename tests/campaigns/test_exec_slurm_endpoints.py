"""Two Slurm clusters side by side as two endpoints, end to end on real clusters.

The first cluster is the machine's (``scripts/slurm/up.sh``, SLURM_CONF), the second the one
``scripts/slurm/up.sh b`` brings up beside it (its own slurm.conf, controller, node daemon
and ClusterName, ``OPOS_SLURM_B_CONF``). A campaign on each endpoint runs through the same
cycles; each job must have run on its own cluster exactly once (asked of each cluster's
accounting, with that cluster's slurm.conf) and no endpoint ever had more jobs in flight
than its capacity. Skipped without the clusters unless OPOS_REQUIRE_SLURM=1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import Counter

import pytest

from campaigns.choices import JobState
from campaigns.models import Job, Submission
from tests.campaigns.exec_support import DEMO_STAGES, all_final, demo_template, launch, run_until
from tests.parallel import slurm_in_use

pytestmark = [pytest.mark.slurm, pytest.mark.django_db(transaction=True)]

CONF_A = os.environ.get("SLURM_CONF") or "/var/lib/opos-slurm/slurm.conf"
CONF_B = os.environ.get("OPOS_SLURM_B_CONF") or "/var/lib/opos-slurm-b/slurm.conf"
CAPACITY = {"slurm": 2, "slurm-b": 1}
IN_FLIGHT = (JobState.QUEUED, JobState.RUNNING, JobState.HELD)


def slurm(conf: str, *argv: str, timeout: float = 30) -> str:
    """A Slurm command against the cluster of ``conf`` (its environment, no shell)."""
    done = subprocess.run(
        list(argv),
        env={**os.environ, "SLURM_CONF": conf},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} ({conf}): {done.stderr.strip()}")
    return done.stdout


@pytest.fixture(scope="module")
def second_cluster(slurm_cluster) -> str:
    """The second cluster's slurm.conf, when its controller answers; else skip (fail with
    OPOS_REQUIRE_SLURM=1)."""
    problem = None
    if not shutil.which("sinfo"):
        problem = "Slurm client commands not installed"
    elif not os.path.exists(CONF_B):
        problem = f"no second cluster: {CONF_B} does not exist"
    else:
        try:
            slurm(CONF_B, "sinfo", "-h", "-o", "%T", timeout=15)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            problem = f"the second cluster does not answer: {exc}"
    if problem:
        message = f"{problem} (start it with: sudo scripts/slurm/up.sh b)"
        if os.environ.get("OPOS_REQUIRE_SLURM") == "1":
            pytest.fail(f"OPOS_REQUIRE_SLURM=1 but {message}")
        pytest.skip(message)
    return CONF_B


@pytest.fixture
def two_endpoints(exec_env, settings, second_cluster):
    settings.OPOS_BACKEND_OPTIONS = {
        **settings.OPOS_BACKEND_OPTIONS,
        "slurm": {**settings.OPOS_BACKEND_OPTIONS["slurm"], "slurm_conf": CONF_A},
        "slurm-b": {
            "kind": "slurm",
            "slurm_conf": second_cluster,
            "state_dir": str(exec_env / "slurm-b-state"),
            "timeout": 60,
        },
    }
    settings.OPOS_BACKEND_CAPACITY = {**settings.OPOS_BACKEND_CAPACITY, **CAPACITY}
    return exec_env


def accounted(conf: str, tokens: set[str]) -> list[tuple[str, str, str]]:
    """(batch id, job name, cluster) of every array element the cluster of ``conf``
    accounted under one of ``tokens`` (the submissions' tokens are the job names)."""
    out = slurm(
        conf, "sacct", "-X", "-n", "-P", "-S", "now-2hours", "-o", "JobID,JobName%80,Cluster"
    )
    rows = []
    for line in out.splitlines():
        batch_id, name, cluster = [*line.split("|"), "", ""][:3]
        if name in tokens:
            rows.append((batch_id, name, cluster))
    return rows


def test_two_clusters_each_run_their_own_campaign_once_within_their_capacity(
    slurm_cluster, two_endpoints, experiment, operator
):
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    campaign_a, _ = launch(
        experiment, operator, events=500, per_job=100, backend="slurm", template=template
    )
    campaign_b, _ = launch(
        experiment, operator, events=400, per_job=100, backend="slurm-b", template=template
    )
    highest: Counter[str] = Counter()

    def done() -> bool:
        # After every cycle: what each endpoint has in flight, never above its capacity.
        flying = Counter(Job.objects.filter(state__in=IN_FLIGHT).values_list("backend", flat=True))
        for name, n in flying.items():
            highest[name] = max(highest[name], n)
        return all_final(stage__campaign__in=[campaign_a, campaign_b])

    with slurm_in_use():
        run_until(done, timeout=300, pause=1.0)

    for campaign, endpoint, count in ((campaign_a, "slurm", 5), (campaign_b, "slurm-b", 4)):
        jobs = list(Job.objects.filter(stage__campaign=campaign))
        assert len(jobs) == count, endpoint
        assert {j.state for j in jobs} == {JobState.SUCCEEDED}
        assert {j.backend for j in jobs} == {endpoint}
        assert {j.parent_id for j in jobs} == {None}  # no retry: each ran once
        assert set(
            Submission.objects.filter(stage__campaign=campaign).values_list("backend", flat=True)
        ) == {endpoint}
    # Each endpoint filled its capacity and never went past it.
    assert highest["slurm"] <= CAPACITY["slurm"] and highest["slurm-b"] <= CAPACITY["slurm-b"]
    assert highest["slurm"] >= 1 and highest["slurm-b"] >= 1

    tokens = {
        name: set(
            Submission.objects.filter(stage__campaign=campaign).values_list("token", flat=True)
        )
        for name, campaign in (("slurm", campaign_a), ("slurm-b", campaign_b))
    }
    ids = {
        name: sorted(
            Job.objects.filter(stage__campaign=campaign).values_list("batch_id", flat=True)
        )
        for name, campaign in (("slurm", campaign_a), ("slurm-b", campaign_b))
    }
    clusters = {"slurm": (CONF_A, "opos"), "slurm-b": (CONF_B, "oposb")}
    # Each cluster's accounting, asked with its own slurm.conf: every job of its endpoint
    # exactly once, under its own ClusterName, and none of the other endpoint's. Accounting
    # reaches slurmdbd a moment after the job ends, so it is asked again for a while.
    all_tokens = tokens["slurm"] | tokens["slurm-b"]
    for name, (conf, cluster_name) in clusters.items():
        deadline = time.monotonic() + 60
        while True:
            rows = accounted(conf, all_tokens)
            if len(rows) >= len(ids[name]) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert sorted(batch_id for batch_id, _n, _c in rows) == ids[name], name
        assert {token for _b, token, _c in rows} <= tokens[name], name
        assert {cluster for _b, _t, cluster in rows} == {cluster_name}, name
    # And squeue of each cluster, with its conf, no longer lists any of them.
    for conf in (CONF_A, CONF_B):
        listed = set(slurm(conf, "squeue", "-h", "-r", "-o", "%j").split())
        assert not listed & all_tokens

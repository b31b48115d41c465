"""A partition's capacity and an experiment's quota on it hold on the real Slurm cluster:
the submit cycle never has more of the campaign's jobs at the cluster in that partition
than the limits allow, ``squeue`` agrees, and the campaign still runs to the end.

Skipped without a cluster unless OPOS_REQUIRE_SLURM=1.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from campaigns.choices import JobState
from campaigns.execution import finalize, polling, submission
from campaigns.models import Job
from campaigns.services import partitions
from tests.campaigns.exec_support import DEMO_STAGES, all_final, demo_template, launch

pytestmark = [pytest.mark.slurm, pytest.mark.django_db(transaction=True)]

IN_FLIGHT = (JobState.QUEUED, JobState.RUNNING, JobState.HELD)


def squeue(batch_ids: set[str]) -> dict[str, str]:
    """``{batch id: partition}`` of the given jobs that Slurm still lists."""
    out = subprocess.run(
        ["squeue", "--noheader", "--array", "--format=%i %P"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = dict(line.split() for line in out.splitlines() if line.strip())
    return {job: part for job, part in rows.items() if job in batch_ids}


def test_partition_quota_caps_what_reaches_slurm(slurm_cluster, exec_env, experiment, operator):
    spare = partitions.set_partition(operator, "spare", 3, reason="test")
    partitions.set_quota(operator, spare, experiment, max_jobs=2, reason="test")
    experiment.batch_partition = "spare"
    experiment.save(update_fields=["batch_partition"])
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    campaign, _request = launch(
        experiment, operator, events=600, per_job=100, backend="slurm", template=template
    )
    jobs = Job.objects.filter(stage__campaign=campaign)
    assert jobs.count() == 6

    submission.submit_ready()
    sent = {j.batch_id for j in jobs.exclude(batch_id="")}
    assert len(sent) == 2  # the quota, not the partition's 3 nor the backend's 50
    at_slurm = squeue(sent)
    assert set(at_slurm.values()) <= {"spare"} and at_slurm  # in the partition asked for

    most, deadline = 2, time.monotonic() + 240
    while not all_final(stage__campaign=campaign):
        assert time.monotonic() < deadline, "the campaign did not finish in time"
        submission.submit_ready()
        flying = list(jobs.filter(state__in=IN_FLIGHT).values_list("batch_id", flat=True))
        assert len(flying) <= 2, flying
        assert len(squeue(set(flying))) <= 2
        most = max(most, len(flying))
        polling.poll()
        finalize.finalize_outcomes()
        time.sleep(0.5)
    assert set(jobs.values_list("state", flat=True)) == {JobState.SUCCEEDED}
    assert most == 2

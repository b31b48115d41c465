"""Controls reach jobs queued at the real Slurm cluster: hold, release, priority, move.

Jobs are kept queued by a start time an hour away (``--begin``), so the controls find them
pending whatever else the cluster runs; every test cancels its jobs. What ``scontrol show
job`` prints is the evidence. Set OPOS_REQUIRE_SLURM=1 to fail rather than skip without a
cluster.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from campaigns.batch import ArraySpec, ControlOutcome, Placement
from campaigns.batch.slurm import NICE_BY_LEVEL, SlurmBackend
from campaigns.choices import JobState
from campaigns.execution import backends, controls
from campaigns.models import BatchControl, CampaignEvent, ControlState, Job
from campaigns.services import campaign_action, schedule_requests, update_campaign
from tests.campaigns.factories import CampaignFactory, approved_request

pytestmark = pytest.mark.slurm


@pytest.fixture
def backend(slurm_cluster, tmp_path: Path) -> SlurmBackend:
    return SlurmBackend(state_dir=tmp_path / "slurm-state", timeout=60)


@pytest.fixture
def queued(slurm_cluster, request):
    """``queued(n)``: an array of ``n`` jobs that stays pending for an hour; cancelled after."""
    arrays: list[str] = []

    def submit(n: int = 3, *extra: str) -> list[str]:
        name = f"ctl{time.time_ns()}"
        done = subprocess.run(
            [
                "sbatch",
                "--parsable",
                "--begin=now+1hour",
                f"--array=0-{n - 1}",
                f"--job-name={name}",
                "--output=/dev/null",
                *extra,
                "--wrap",
                "true",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        job = done.stdout.strip().split(";")[0]
        arrays.append(job)
        return [f"{job}_{i}" for i in range(n)]

    yield submit
    if arrays:
        subprocess.run(["scancel", *arrays], capture_output=True, check=False)


def show(batch_id: str) -> dict[str, str]:
    """``scontrol show job`` of one array element, as a dict of its ``Key=Value`` fields."""
    out = subprocess.run(
        ["scontrol", "show", "job", batch_id], capture_output=True, text=True, check=True
    ).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def test_hold_then_release_shows_in_scontrol(backend, queued):
    ids = queued(3)
    answers = backend.hold(ids[:2])
    assert {a.outcome for a in answers.values()} == {ControlOutcome.DONE}
    assert show(ids[0])["Reason"] == "JobHeldUser"
    assert show(ids[1])["Reason"] == "JobHeldUser"
    assert show(ids[2])["Reason"] != "JobHeldUser"  # not asked: untouched
    # Holding again is answered per job as done already.
    assert backend.hold(ids[:1])[ids[0]] == (ControlOutcome.DONE, "already held")
    assert {a.outcome for a in backend.release(ids).values()} == {ControlOutcome.DONE}
    assert all(show(i)["JobState"] == "PENDING" for i in ids)
    assert all(show(i)["Reason"] != "JobHeldUser" for i in ids)


def test_priority_becomes_the_nice_value(backend, queued):
    ids = queued(2)
    answers = backend.set_priority(ids, 0)
    assert [answers[i].outcome for i in ids] == [ControlOutcome.DONE] * 2
    assert {show(i)["Nice"] for i in ids} == {str(NICE_BY_LEVEL[0])}
    backend.set_priority(ids[:1], 3)
    assert show(ids[0])["Nice"] == str(NICE_BY_LEVEL[3])
    assert show(ids[1])["Nice"] == str(NICE_BY_LEVEL[0])


def test_move_changes_the_partition_and_avoids_what_it_must(backend, queued):
    ids = queued(2)
    assert show(ids[0])["Partition"] == "debug"
    answers = backend.move(ids[:1], Placement(partition="spare"))
    assert answers[ids[0]].outcome == ControlOutcome.DONE
    assert show(ids[0])["Partition"] == "spare"
    # No partition of its own, "debug" to avoid: every other partition of the cluster.
    backend.move(ids[1:], Placement(avoid_partitions=("debug",)))
    assert show(ids[1])["Partition"] == "spare"


def test_a_refused_control_is_answered_for_that_job_alone(backend, queued):
    ids = queued(2)
    answers = backend.move(ids, Placement(partition="no-such-partition"))
    assert {a.outcome for a in answers.values()} == {ControlOutcome.FAILED}
    assert "invalid partition" in answers[ids[0]].detail.lower()
    # Jobs that ended (or were never known) are not failures: there is nothing to do.
    subprocess.run(["scancel", ids[1]], check=True)
    time.sleep(1)
    answers = backend.hold(ids)
    assert answers[ids[0]].outcome == ControlOutcome.DONE
    assert answers[ids[1]].outcome == ControlOutcome.SKIPPED


def test_submission_carries_partition_and_priority(backend, tmp_path):
    array_dir = tmp_path / "array"
    array_dir.mkdir()
    spec = ArraySpec(
        token=f"t{time.time_ns()}",
        array_dir=array_dir,
        size=1,
        argv=["/bin/true"],
        partition="spare",
        priority=0,
        walltime_s=60,
    )
    (job,) = backend.submit(spec)
    try:
        fields = show(job)
        assert fields["Partition"] == "spare"
        assert fields["Nice"] == str(NICE_BY_LEVEL[0])
    finally:
        backend.cancel([job])


def test_placement_options_pass_account_and_qos_through(backend):
    # No accounting daemon on the test cluster: accounts and QOS are not enforced here, so
    # what is checked is the sbatch argument list.
    options = backend.placement_options(
        Placement(partition="spare", account="dune-prod", qos="high")
    )
    assert options == ["--partition=spare", "--account=dune-prod", "--qos=high"]
    options = backend.placement_options(Placement(avoid_partitions=("spare",)))
    assert options == ["--partition=debug"]
    with pytest.raises(ValueError, match="also one to avoid"):
        Placement(partition="spare", avoid_partitions=("spare",))
    with pytest.raises(ValueError, match="invalid account"):
        Placement(account="x; rm -rf /")


# --- through the services and the poll cycle -------------------------------------------------


@pytest.fixture
def campaign_on_slurm(experiment, operator, backend, queued, monkeypatch):
    """An active Slurm campaign whose first three jobs are queued at the real cluster."""
    monkeypatch.setattr(backends, "backend", lambda name: backend)
    campaign = CampaignFactory(experiment=experiment, backend="slurm")
    request = approved_request(experiment, events=300, per_job=100)
    schedule_requests(campaign, [request.pk], operator)
    campaign_action(campaign, "launch", operator)
    ids = queued(3)
    jobs = list(Job.objects.filter(stage__campaign=campaign).order_by("id")[:3])
    for job, batch_id in zip(jobs, ids, strict=True):
        job.state, job.backend, job.batch_id = JobState.QUEUED, "slurm", batch_id
    Job.objects.bulk_update(jobs, ["state", "backend", "batch_id"])
    return campaign, ids


@pytest.mark.django_db
def test_pause_holds_and_resume_releases_the_queued_jobs(campaign_on_slurm, operator):
    campaign, ids = campaign_on_slurm
    campaign_action(campaign, "pause", operator, "site downtime")
    event = CampaignEvent.objects.get(campaign=campaign, kind="pause")
    holds = BatchControl.objects.filter(campaign=campaign, action="hold")
    # Recorded with the pause, in its transaction; sent by the next cycle.
    assert [c.event_id for c in holds] == [event.pk] * 3
    assert {c.state for c in holds} == {ControlState.PENDING}
    assert show(ids[0])["Reason"] != "JobHeldUser"

    report = controls.apply_pending()
    assert report.done == 3
    assert {show(i)["Reason"] for i in ids} == {"JobHeldUser"}
    assert set(holds.values_list("state", flat=True)) == {ControlState.DONE}

    campaign_action(campaign, "resume", operator)
    assert controls.apply_pending().done == 3
    assert all(show(i)["Reason"] != "JobHeldUser" for i in ids)


@pytest.mark.django_db
def test_priority_and_partition_edits_reach_the_queued_jobs(campaign_on_slurm, operator):
    campaign, ids = campaign_on_slurm
    update_campaign(campaign, operator, {"priority": "critical"}, reason="conference")
    update_campaign(campaign, operator, {"batch_partition": "spare"})
    report = controls.apply_pending()
    assert (report.done, report.failed) == (6, 0)
    for batch_id in ids:
        fields = show(batch_id)
        assert fields["Nice"] == str(NICE_BY_LEVEL[3])
        assert fields["Partition"] == "spare"
    edits = CampaignEvent.objects.filter(campaign=campaign, kind="edited").order_by("id")
    # A priority change also records its effect on everyone else, computed at the decision.
    assert [[k for k in e.changes if not k.startswith("effect")] for e in edits] == [
        ["priority"],
        ["batch_partition"],
    ]
    assert "effect_computed" in edits[0].changes and "effect_computed" not in edits[1].changes


@pytest.mark.django_db
def test_a_refused_move_is_retried_then_shown_failed(campaign_on_slurm, operator, settings):
    settings.OPOS_CONTROL_ATTEMPTS = 2
    campaign, ids = campaign_on_slurm
    update_campaign(campaign, operator, {"batch_partition": "gone"})
    first = controls.apply_pending()
    assert (first.retrying, first.failed) == (3, 0)
    pending = BatchControl.objects.filter(campaign=campaign, state=ControlState.PENDING)
    assert pending.count() == 3
    assert all("invalid partition" in c.detail.lower() for c in pending)
    second = controls.apply_pending()
    assert second.failed == 3
    failed = BatchControl.objects.filter(campaign=campaign, state=ControlState.FAILED)
    assert failed.count() == 3 and all(c.attempts == 2 for c in failed)
    assert {show(i)["Partition"] for i in ids} == {"debug"}

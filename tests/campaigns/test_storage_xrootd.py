"""Outputs reach a real XRootD server (scripts/xrootd/up.sh): copied from the worker with
xrdcp, verified by adler32 on both ends (the server's own checksum query), recorded as
replicas; a crash after the copy is followed by an adoption, not a second copy; a checksum
mismatch or an unreachable server is a classed transfer failure, retried."""

from __future__ import annotations

import subprocess
import time
import uuid
import zlib
from pathlib import Path

import pytest
from django.utils import timezone

from campaigns.choices import FailureClass, JobState
from campaigns.execution import finalize, polling, storage, submission, transfer
from campaigns.models import Job, OutputFile, Replica, Transfer
from campaigns.services.storage import set_storage_area
from tests.campaigns.exec_support import DEMO_STAGES, all_final, demo_template, launch, run_until

SCRIPT = """\
import json, pathlib
job = json.loads(pathlib.Path("job.json").read_text())
out = pathlib.Path("output")
out.mkdir(exist_ok=True)
(out / "events.txt").write_text("event\\n" * job["events"])
"""

pytestmark = pytest.mark.django_db(transaction=True)


def server_of(url: str) -> tuple[str, str]:
    host, _, path = url.removeprefix("root://").partition("/")
    return f"root://{host}", path


def xrdfs(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    server, path = server_of(url)
    return subprocess.run(
        ["xrdfs", server, *args, path], capture_output=True, text=True, timeout=30, check=False
    )


def adler32(path: Path) -> str:
    return f"{zlib.adler32(path.read_bytes()):08x}"


@pytest.fixture
def area(xrootd_server) -> str:
    """A fresh folder of the server for this test."""
    return f"{xrootd_server}/t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def one_job(exec_env, experiment, operator, tmp_path, area):
    set_storage_area(experiment, area, operator)
    script = tmp_path / "write.py"
    script.write_text(SCRIPT)
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    campaign, _request = launch(experiment, operator, events=10, per_job=10, template=template)
    return campaign


def run_to_outcome(campaign, timeout=60) -> Job:
    """Submit and poll (no finalize) until the job's end was seen."""
    submission.submit_ready()
    deadline = time.monotonic() + timeout
    while not Job.objects.filter(stage__campaign=campaign).exclude(outcome="").exists():
        assert time.monotonic() < deadline, "job did not finish"
        polling.poll()
        time.sleep(0.2)
    return Job.objects.get(stage__campaign=campaign, attempt=1)


def checked(job: Job) -> tuple[list[finalize.Outcome], dict]:
    """What finalize knows of a finished job before transferring: its checked outputs."""
    pending = list(Job.objects.filter(pk=job.pk).values(*finalize.OUTCOME_FIELDS))
    stages = finalize.stage_rows(pending)
    return [finalize.inspect(j, stages[j["stage_id"]], {}) for j in pending], stages


def test_outputs_are_copied_verified_on_the_server_and_recorded(one_job, area):
    run_until(lambda: all_final(stage__campaign=one_job))

    job = Job.objects.get(stage__campaign=one_job)
    assert job.state == JobState.SUCCEEDED
    f = OutputFile.objects.get()
    replica = Replica.objects.get(file=f)
    assert replica.url == f"{area}/{f.dataset.name}/{f.name}"
    assert replica.storage.experiment_id == one_job.experiment_id
    assert replica.adler32 == adler32(Path(f.path))
    assert replica.verified_at is not None and not replica.adopted
    # The server's own checksum of what it stores is the job's file's.
    query = xrdfs(replica.url, "query", "checksum")
    assert query.returncode == 0, query.stderr
    assert query.stdout.split() == ["adler32", adler32(Path(f.path))]
    assert not Transfer.objects.exists()


def test_a_retry_after_a_crash_adopts_the_stored_file_without_copying_again(
    one_job, area, monkeypatch
):
    job = run_to_outcome(one_job)

    def crash(*args, **kwargs):
        raise RuntimeError("worker killed between the copy and the transaction")

    with monkeypatch.context() as m:
        m.setattr(finalize, "write", crash)
        with pytest.raises(RuntimeError):
            finalize.finalize_outcomes()
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and job.outcome  # still in flight, nothing declared
    assert not OutputFile.objects.exists()
    dataset = job.stage.output_dataset.name
    listing = xrdfs(f"{area}/{dataset}", "ls")
    assert listing.returncode == 0, listing.stderr
    assert len(listing.stdout.split()) == 1  # the copy the crashed cycle made
    before = xrdfs(f"{area}/{dataset}/events_000000.txt", "stat").stdout

    report = finalize.finalize_outcomes()

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert (report.transfers.adopted, report.transfers.copied) == (1, 0)
    replica = Replica.objects.get()
    assert replica.adopted
    assert xrdfs(f"{area}/{dataset}", "ls").stdout.split() == listing.stdout.split()
    assert xrdfs(f"{area}/{dataset}/events_000000.txt", "stat").stdout == before


def test_a_checksum_mismatch_is_a_classed_transfer_failure_and_the_job_stays_in_flight(
    one_job, area, settings
):
    job = run_to_outcome(one_job)
    outcomes, stages = checked(job)
    # The file changes after its checks and before the copy: storage gets other bytes.
    path = Path(outcomes[0].files[0]["path"])
    path.write_bytes(b"x" * path.stat().st_size)
    report = transfer.TransferReport()

    to_write = transfer.deliver(outcomes, stages, timezone.now(), report)

    assert to_write == []
    assert report.failed_attempts == 1
    t = Transfer.objects.get(job=job)
    assert (t.attempts, t.error_kind) == (1, "checksum")
    assert "adler32" in t.reason and "1/5" in t.reason
    job.refresh_from_db()
    assert job.state == JobState.RUNNING  # not succeeded: nothing verified in storage
    assert not Replica.objects.exists()


def test_transfers_out_of_attempts_fail_the_job_with_class_transfer_and_retry_it(
    one_job, area, settings
):
    settings.OPOS_TRANSFER_MAX_ATTEMPTS = 1
    job = run_to_outcome(one_job)
    outcomes, stages = checked(job)
    path = Path(outcomes[0].files[0]["path"])
    path.write_bytes(b"y" * path.stat().st_size)
    report = finalize.FinalizeReport()

    to_write = transfer.deliver(outcomes, stages, timezone.now(), report.transfers)
    finalize.write(to_write, stages, timezone.now(), report)

    job.refresh_from_db()
    assert (job.state, job.failure_class) == (JobState.FAILED, FailureClass.TRANSFER)
    assert "checksum" in job.failure_reason
    assert Job.objects.get(parent=job).state == JobState.PLANNED  # a new attempt
    assert not OutputFile.objects.exists() and not Transfer.objects.exists()


def test_an_unreachable_server_is_classed_and_retried_after_a_backoff(
    exec_env, experiment, operator, tmp_path, settings
):
    settings.OPOS_RETRY_BACKOFF_S = 30
    set_storage_area(experiment, "root://127.0.0.1:1//data/nobody-listens", operator)
    script = tmp_path / "write.py"
    script.write_text(SCRIPT)
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    campaign, _request = launch(experiment, operator, events=10, per_job=10, template=template)
    job = run_to_outcome(campaign)

    report = finalize.finalize_outcomes()

    t = Transfer.objects.get(job=job)
    assert (t.attempts, t.error_kind) == (1, "unreachable")
    assert t.next_try > timezone.now()
    assert report.transfers.failed_attempts == 1 and report.succeeded == 0
    report = finalize.finalize_outcomes()  # within the backoff: not even read again
    assert (report.succeeded, report.failed, report.transfers.failed_attempts) == (0, 0, 0)
    assert Transfer.objects.get(job=job).attempts == 1
    assert Job.objects.get(pk=job.pk).state == JobState.RUNNING
    # Once the backoff is over it is tried (and fails) again.
    Transfer.objects.filter(job=job).update(next_try=timezone.now())
    report = finalize.finalize_outcomes()
    assert report.transfers.failed_attempts == 1
    assert Transfer.objects.get(job=job).attempts == 2


def test_the_server_answers_adler32_as_zlib_computes_it(xrootd_server, tmp_path):
    source = tmp_path / "blob.bin"
    source.write_bytes(bytes(range(256)) * 4099)
    url = f"{xrootd_server}/t{uuid.uuid4().hex[:12]}/blob.bin"

    first = storage.store(source, adler32(source), url)
    again = storage.store(source, adler32(source), url)

    assert (first.adopted, again.adopted) == (False, True)
    assert storage.xrootd_checksum(url) == adler32(source)
    assert storage.xrootd_checksum(url + ".absent") is None

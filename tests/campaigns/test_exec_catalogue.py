"""The catalogue: outputs declared from manifests; checksum mismatches and duplicate names
are refused and the job failed with that reason; nothing is declared twice."""

import time
from pathlib import Path

import pytest

from campaigns.choices import FailureClass, JobState
from campaigns.execution import finalize, polling, submission
from campaigns.models import Dataset, Job, OutputFile, Stage
from tests.campaigns.exec_support import (
    DEMO_STAGES,
    all_final,
    demo_template,
    launch,
    run_until,
)

SCRIPT = """\
import json, pathlib
job = json.loads(pathlib.Path("job.json").read_text())
out = pathlib.Path("output")
out.mkdir(exist_ok=True)
(out / "events.txt").write_text("event\\n" * job["events"])
"""

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def one_job(exec_env, experiment, operator, tmp_path):
    script = tmp_path / "write.py"
    script.write_text(SCRIPT)
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    campaign, _request = launch(experiment, operator, events=10, per_job=10, template=template)
    return campaign


def run_to_outcome(campaign, timeout=60):
    """Submit and poll (no finalize) until the job's end was seen."""
    submission.submit_ready()
    deadline = time.monotonic() + timeout
    while not Job.objects.filter(stage__campaign=campaign).exclude(outcome="").exists():
        assert time.monotonic() < deadline, "job did not finish"
        polling.poll()
        time.sleep(0.2)
    return Job.objects.get(stage__campaign=campaign, attempt=1)


def test_declared_file_records_name_size_checksum_events_and_job(one_job):
    run_until(lambda: all_final(stage__campaign=one_job))
    job = Job.objects.get(stage__campaign=one_job)
    f = OutputFile.objects.get()
    assert (f.name, f.size, f.events, f.job_id) == ("events_000000.txt", 60, 10, job.pk)
    assert Path(f.path) == Path(job.workdir) / "output" / "events.txt"
    dataset = Dataset.objects.get(pk=f.dataset_id)
    assert (dataset.file_count, dataset.size_bytes, dataset.events) == (1, 60, 10)
    finalize.finalize_outcomes()  # running again declares nothing twice
    assert OutputFile.objects.count() == 1


def test_checksum_mismatch_is_refused_and_retried(one_job):
    job = run_to_outcome(one_job)
    (Path(job.workdir) / "output" / "events.txt").write_text("corrupted on the way\n")

    finalize.finalize_outcomes()

    job.refresh_from_db()
    assert (job.state, job.failure_class) == (JobState.FAILED, FailureClass.OUTPUT)
    assert "checksum mismatch" in job.failure_reason or "size" in job.failure_reason
    assert not OutputFile.objects.exists()
    run_until(lambda: all_final(stage__campaign=one_job))
    retry = Job.objects.get(parent=job)
    assert retry.state == JobState.SUCCEEDED
    assert OutputFile.objects.get().job_id == retry.pk


def test_duplicate_name_is_refused_and_not_retried(one_job):
    stage = Stage.objects.get(campaign=one_job)
    OutputFile.objects.create(
        dataset_id=stage.output_dataset_id, name="events_000000.txt", size=1, checksum="0" * 64
    )
    job = run_to_outcome(one_job)

    finalize.finalize_outcomes()

    job.refresh_from_db()
    assert (job.state, job.failure_class) == (JobState.FAILED, FailureClass.OUTPUT)
    assert "duplicate name events_000000.txt" in job.failure_reason
    assert not Job.objects.filter(parent=job).exists()
    assert OutputFile.objects.count() == 1


def test_missing_manifest_is_refused(one_job):
    job = run_to_outcome(one_job)
    (Path(job.workdir) / "manifest.json").unlink()

    finalize.finalize_outcomes()

    job.refresh_from_db()
    assert job.failure_class == FailureClass.OUTPUT
    assert "no readable manifest" in job.failure_reason

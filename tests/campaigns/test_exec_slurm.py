"""The Slurm backend end to end on the real single-node cluster (scripts/slurm/up.sh): a small
demo campaign runs through sbatch arrays, squeue polling and finalize to completion.

Skipped with the reason when no cluster responds; OPOS_REQUIRE_SLURM=1 makes that a failure.
"""

import json
import os
from pathlib import Path

import pytest

from campaigns.choices import CampaignState, JobState
from campaigns.models import Dataset, Job, OutputFile, Stage, Submission
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest
from tests.campaigns.exec_support import (
    DEMO_STAGES,
    all_final,
    assert_counters_match,
    demo_template,
    launch,
    run_until,
    sha256,
)

pytestmark = [pytest.mark.slurm, pytest.mark.django_db(transaction=True)]


def test_demo_campaign_completes_on_slurm(slurm_cluster, exec_env, experiment, operator):
    campaign, request = launch(experiment, operator, events=600, per_job=200, backend="slurm")

    run_until(
        lambda: ProductionRequest.objects.get(pk=request.pk).state == RequestState.COMPLETED,
        timeout=240,
        pause=1.0,
    )

    jobs = list(Job.objects.filter(stage__campaign=campaign))
    assert len(jobs) == 9 and {j.state for j in jobs} == {JobState.SUCCEEDED}
    assert all(j.backend == "slurm" and "_" in j.batch_id for j in jobs)
    for stage in Stage.objects.filter(campaign=campaign):
        assert Dataset.objects.get(pk=stage.output_dataset_id).file_count == 3
        assert stage.events_done == 600
    for f in OutputFile.objects.filter(dataset__campaign=campaign):
        assert sha256(Path(f.path)) == f.checksum
    # One sbatch --array per stage-level batch, never one per job.
    assert Submission.objects.filter(stage__campaign=campaign).count() <= 9
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.COMPLETED
    assert_counters_match(campaign)


def test_arrays_split_at_max_array_size_run_every_element_from_the_array_files(
    slurm_cluster, exec_env, experiment, operator, settings
):
    """Six jobs in chunks of two: three sbatch arrays of one submission, each element found by
    the chunk's offset; the submitter wrote two files, the shim made each element's folder."""
    settings.OPOS_BACKEND_OPTIONS = {
        **settings.OPOS_BACKEND_OPTIONS,
        "slurm": {**settings.OPOS_BACKEND_OPTIONS["slurm"], "max_array_size": 2},
    }
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    campaign, _request = launch(
        experiment, operator, events=600, per_job=100, backend="slurm", template=template
    )

    run_until(lambda: all_final(stage__campaign=campaign), timeout=240, pause=1.0)

    jobs = list(Job.objects.filter(stage__campaign=campaign).order_by("index"))
    assert len(jobs) == 6 and {j.state for j in jobs} == {JobState.SUCCEEDED}
    assert Submission.objects.filter(stage__campaign=campaign).count() == 1
    assert len({j.batch_id.split("_")[0] for j in jobs}) == 3  # chunks of 2, 2, 2
    array_dir = Path(jobs[0].workdir).parent
    assert sorted(p.name for p in array_dir.iterdir()) == sorted(
        ["array.json", "jobs.jsonl", "logs", *(str(e) for e in range(6))]
    )
    for element, job in enumerate(jobs):
        folder = Path(job.workdir)
        assert folder == array_dir / str(element)
        given = json.loads((folder / "job.json").read_text())
        assert (given["job"], given["index"]) == (job.pk, job.index)
        # The logs are Slurm's files named by batch id, linked into the folder by the shim.
        assert os.readlink(folder / "stderr.log") == f"../logs/{job.batch_id}.err"
        assert (array_dir / "logs" / f"{job.batch_id}.out").exists()
    assert_counters_match(campaign)

"""The Slurm backend end to end on the real single-node cluster (scripts/slurm/up.sh): a small
demo campaign runs through sbatch arrays, squeue polling and finalize to completion.

Skipped with the reason when no cluster responds; OPOS_REQUIRE_SLURM=1 makes that a failure.
"""

from pathlib import Path

import pytest

from campaigns.choices import CampaignState, JobState
from campaigns.models import Dataset, Job, OutputFile, Stage, Submission
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest
from tests.campaigns.exec_support import assert_counters_match, launch, run_until, sha256

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

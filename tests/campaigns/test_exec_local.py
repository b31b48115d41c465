"""The local backend end to end: a small demo campaign runs to completion through the services.

Submit, poll and finalize are called as the beat tasks would call them, until the request is
completed (bounded); the outputs are in the catalogue with checksums that match the files.
"""

import pytest

from campaigns.choices import CampaignState, JobState, SubmissionState
from campaigns.models import Dataset, Job, OutputFile, Stage, Submission
from requests_app.choices import RequestState
from requests_app.models import Transition
from tests.campaigns.exec_support import (
    assert_counters_match,
    launch,
    run_until,
    sha256,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_campaign_completes_with_outputs_declared(exec_env, experiment, operator):
    campaign, request = launch(experiment, operator, events=600, per_job=200)

    run_until(lambda: request.__class__.objects.get(pk=request.pk).state == RequestState.COMPLETED)

    stages = list(Stage.objects.filter(campaign=campaign).order_by("position"))
    assert [s.jobs_total for s in stages] == [3, 3, 3]
    assert Job.objects.filter(stage__campaign=campaign).count() == 9
    assert set(Job.objects.filter(stage__campaign=campaign).values_list("state", flat=True)) == {
        JobState.SUCCEEDED
    }
    for stage in stages:
        assert (stage.n_succeeded, stage.events_done) == (3, 600)
        dataset = Dataset.objects.get(pk=stage.output_dataset_id)
        assert dataset.file_count == 3
        assert dataset.events == 600
    files = list(OutputFile.objects.filter(dataset__campaign=campaign))
    assert len(files) == 9
    for f in files:
        assert f.job.state == JobState.SUCCEEDED
        assert sha256(__import__("pathlib").Path(f.path)) == f.checksum
    # Every submission went through `submitting` to `submitted`; each job once.
    assert set(Submission.objects.values_list("state", flat=True)) == {SubmissionState.SUBMITTED}
    assert sum(Submission.objects.values_list("size", flat=True)) == 9
    # The request moved scheduled -> in_production -> completed through the intake service.
    actions = list(
        Transition.objects.filter(request=request)
        .order_by("created")
        .values_list("action", flat=True)
    )
    assert actions[-2:] == ["start", "complete"]
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.COMPLETED
    assert_counters_match(campaign)


def test_a_campaign_left_active_by_a_stopped_cycle_completes_at_the_next(
    exec_env, experiment, operator, monkeypatch
):
    """The request's completion and its campaign's are two commits: a worker stopped
    between them leaves a campaign whose requests are all done. The next cycle finds it
    by its requests (it is no request's open campaign any more) and completes it."""
    from campaigns.execution import finalize

    campaign, request = launch(experiment, operator, events=200, per_job=200)
    with monkeypatch.context() as patched:
        patched.setattr(finalize, "complete_campaign_if_done", lambda *a, **k: False)
        run_until(
            lambda: request.__class__.objects.get(pk=request.pk).state == RequestState.COMPLETED
        )
        campaign.refresh_from_db()
        assert campaign.state == CampaignState.ACTIVE

    report = finalize.finalize_outcomes()

    assert report.campaigns_completed == [campaign.pk]
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.COMPLETED
    # Once completed it is not looked at again.
    assert finalize.finalize_outcomes().campaigns_completed == []

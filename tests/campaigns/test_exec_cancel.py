"""A cancelled campaign's jobs in flight are cancelled at the batch system (real processes
killed), end cancelled, and are not retried."""

import time

import pytest

from campaigns.choices import CampaignState, FailureClass, JobState
from campaigns.execution import polling, submission
from campaigns.models import Campaign, Job
from campaigns.services import campaign_action
from tests.campaigns.exec_support import (
    DEMO_STAGES,
    all_final,
    assert_counters_match,
    demo_template,
    launch,
    run_until,
)

SLEEPER = """\
import time
time.sleep(300)
"""


@pytest.mark.django_db(transaction=True)
def test_cancelled_campaign_cancels_its_running_jobs(exec_env, experiment, operator, tmp_path):
    script = tmp_path / "sleep.py"
    script.write_text(SLEEPER)
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    campaign, _ = launch(experiment, operator, events=20, per_job=10, template=template)
    submission.submit_ready()
    deadline = time.monotonic() + 30
    while Job.objects.filter(state=JobState.RUNNING).count() < 2:
        assert time.monotonic() < deadline
        polling.poll()
        time.sleep(0.2)

    campaign_action(campaign, "cancel", operator, "wrong generator tune")
    assert Campaign.objects.get(pk=campaign.pk).cancel_pending

    report = polling.poll()

    assert report.cancelled_campaigns == [campaign.pk]
    assert not Campaign.objects.get(pk=campaign.pk).cancel_pending
    run_until(lambda: all_final(stage__campaign=campaign), timeout=60)
    jobs = list(Job.objects.filter(stage__campaign=campaign))
    assert len(jobs) == 2  # not retried
    assert {(j.state, j.failure_class) for j in jobs} == {
        (JobState.CANCELLED, FailureClass.CANCELLED)
    }
    assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.CANCELLED
    assert_counters_match(campaign)

"""Execution pages: the catalogue browse, the jobs of a stage with failure class and log
tail, stuck work; operators' recover and cancel-and-retry; bounded queries; visibility."""

import pytest
from django.urls import reverse

from campaigns.batch import BatchState
from campaigns.choices import JobState
from campaigns.execution import finalize, polling, stuck, submission
from campaigns.models import Dataset, Job, Stage
from tests.campaigns.exec_support import DEMO_STAGES, demo_template, launch

pytestmark = pytest.mark.django_db


@pytest.fixture
def worked(exec_env, fake_backend, experiment, operator):
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    campaign, _ = launch(experiment, operator, events=30, per_job=10, template=template)
    submission.submit_ready()
    jobs = list(Job.objects.order_by("index"))
    folder = exec_env / "failed"
    folder.mkdir()
    (folder / "stderr.log").write_text("Traceback\nValueError: <b>bad calibration</b>\n")
    Job.objects.filter(pk=jobs[0].pk).update(workdir=str(folder))
    fake_backend.set(jobs[:1], BatchState.FAILED, exit_code=2)
    polling.poll()
    finalize.finalize_outcomes()
    return campaign, Stage.objects.get(campaign=campaign), jobs


def test_stage_jobs_page_shows_failure_class_and_log_tail(
    worked, client, operator, django_assert_max_num_queries
):
    _campaign, stage, jobs = worked
    client.force_login(operator)
    url = reverse("campaigns:stage_jobs", args=[stage.pk])
    with django_assert_max_num_queries(12):
        page = client.get(url, {"job": jobs[0].pk}).content.decode()
    assert "Other" in page and "exit code 2" in page
    assert "ValueError: &lt;b&gt;bad calibration&lt;/b&gt;" in page  # escaped
    failed = client.get(url, {"state": JobState.FAILED}).content.decode()
    assert failed.count("jstate-failed") == 1
    assert "Cancel and retry" in page and "Recover failed jobs" in page


def test_catalogue_pages(worked, client, physicist, django_assert_max_num_queries):
    _campaign, stage, _jobs = worked
    client.force_login(physicist)
    with django_assert_max_num_queries(8):
        listing = client.get(reverse("campaigns:dataset_list")).content.decode()
    dataset = Dataset.objects.get(pk=stage.output_dataset_id)
    assert dataset.name in listing
    with django_assert_max_num_queries(8):
        detail = client.get(reverse("campaigns:dataset_detail", args=[dataset.pk]))
    assert detail.status_code == 200
    assert (
        "Cancel and retry"
        not in client.get(reverse("campaigns:stage_jobs", args=[stage.pk])).content.decode()
    )


def test_others_get_404_and_non_operators_403(worked, client, other_liaison, physicist):
    _campaign, stage, jobs = worked
    client.force_login(other_liaison)
    assert client.get(reverse("campaigns:stage_jobs", args=[stage.pk])).status_code == 404
    dataset_id = stage.output_dataset_id
    assert client.get(reverse("campaigns:dataset_detail", args=[dataset_id])).status_code == 404
    assert (
        stage.output_dataset.name
        not in client.get(reverse("campaigns:dataset_list")).content.decode()
    )
    client.force_login(physicist)
    url = reverse("campaigns:job_cancel_retry", args=[jobs[1].pk])
    assert client.post(url).status_code == 403


def test_operator_recovers_a_stage_and_cancels_a_stuck_job(worked, client, operator, settings):
    _campaign, stage, jobs = worked
    settings.OPOS_STUCK_QUEUED_S = 0
    stuck.detect_stuck()
    client.force_login(operator)
    listing = client.get(reverse("campaigns:stuck_list")).content.decode()
    assert "Queued too long" in listing

    client.post(reverse("campaigns:job_cancel_retry", args=[jobs[1].pk]))
    assert Job.objects.get(pk=jobs[1].pk).state == JobState.CANCELLED
    Job.objects.filter(parent=jobs[0]).delete()  # pretend retries ran out
    Stage.objects.filter(pk=stage.pk).update(n_planned=0)
    answer = client.post(reverse("campaigns:stage_recover", args=[stage.pk]), {"note": "fixed"})
    assert answer.status_code == 302
    assert Job.objects.filter(parent=jobs[0], state=JobState.READY).exists()


def test_every_job_state_badge_has_a_colour():
    """The stage jobs page marks each job ``badge jstate-<state>``; campaigns.css styles all."""
    from django.conf import settings as django_settings

    css = (django_settings.BASE_DIR / "static" / "css" / "campaigns.css").read_text()
    assert [s for s in JobState.values if f".jstate-{s}" not in css] == []

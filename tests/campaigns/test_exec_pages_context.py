"""Context on the execution pages: every job of a stage names its host and links to its
own page (host, batch job, stdout and stderr); the stages table puts Why waiting and
Submit now first, so they show without scrolling."""

import pytest
from django.urls import reverse

from campaigns.execution import submission
from campaigns.models import Job, Stage
from tests.campaigns.exec_support import DEMO_STAGES, demo_template, launch

pytestmark = pytest.mark.django_db


def test_stage_jobs_name_the_host_and_link_the_job_page(
    exec_env, fake_backend, client, experiment, operator
):
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    campaign, _ = launch(experiment, operator, events=20, per_job=10, template=template)
    submission.submit_ready()
    job = Job.objects.order_by("index").first()
    Job.objects.filter(pk=job.pk).update(host="wn042.example.org")
    client.force_login(operator)
    stage = Stage.objects.get(campaign=campaign)
    page = client.get(reverse("campaigns:stage_jobs", args=[stage.pk])).content.decode()
    assert '<th scope="col">Host</th>' in page and "wn042.example.org" in page
    assert reverse("monitoring:job_log", args=[job.pk]) in page
    detail = client.get(reverse("monitoring:job_log", args=[job.pk])).content.decode()
    assert "wn042.example.org" in detail and job.batch_id in detail
    # Why waiting and Submit now come right after the stage, before the counters.
    campaign_page = client.get(campaign.get_absolute_url()).content.decode()
    head = campaign_page[campaign_page.index('class="compact stages-table"') :]
    assert head.index("Why waiting") < head.index("Submit now") < head.index(">Jobs<")

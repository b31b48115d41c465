"""Partial completion: force-complete a request or a campaign that reached its threshold;
the rest is abandoned through the cancel path, recorded, and the requester is told."""

import pytest
from django.core import mail
from django.urls import reverse

from campaigns.choices import CampaignEventKind, CampaignState, JobState
from campaigns.execution import polling, submission
from campaigns.models import Campaign, CampaignEvent, CampaignRequest, Job, Stage
from campaigns.services import (
    CampaignError,
    campaign_action,
    create_campaign,
    recount_stages,
    schedule_requests,
)
from campaigns.services.completion import force_complete_campaign, force_complete_request
from campaigns.services.testlaunch import update_test_settings
from monitoring.services.reports import status_report
from requests_app.choices import RequestState
from requests_app.models import Comment, ProductionRequest
from tests.campaigns.exec_support import DEMO_STAGES, all_final, demo_template, launch, run_until
from tests.campaigns.factories import approved_request

pytestmark = pytest.mark.django_db(transaction=True)

# The last job (events 90-99) cannot be produced: a corrupt generator table.
SCRIPT = """\
import json, pathlib, sys
job = json.loads(pathlib.Path("job.json").read_text())
if job["first_event"] >= 90:
    sys.exit(2)
out = pathlib.Path("output")
out.mkdir(exist_ok=True)
(out / "events.txt").write_text(str(job["index"]))
"""


@pytest.fixture
def nine_of_ten(exec_env, experiment, operator, settings, tmp_path):
    settings.OPOS_MAX_ATTEMPTS = 1
    script = tmp_path / "gen.py"
    script.write_text(SCRIPT)
    template = demo_template(experiment, stages=DEMO_STAGES[:1], scripts={"generation": script})
    campaign, request = launch(experiment, operator, events=100, per_job=10, template=template)
    run_until(lambda: all_final(stage__campaign=campaign))
    assert Job.objects.filter(state=JobState.SUCCEEDED).count() == 9
    return campaign, request


def test_force_complete_a_request_at_its_threshold(nine_of_ten, operator, liaison, client):
    campaign, request = nine_of_ten
    with pytest.raises(CampaignError) as refused:
        force_complete_request(request, liaison, "enough")
    assert refused.value.kind == "forbidden"
    with pytest.raises(CampaignError) as refused:
        force_complete_request(request, operator, "  ")
    assert refused.value.kind == "invalid"
    # The template's default (95 %) is not reached.
    with pytest.raises(CampaignError) as refused:
        force_complete_request(request, operator, "enough statistics")
    assert refused.value.kind == "conflict"
    assert refused.value.reasons == [
        "done: 90.0 % of the final jobs (9 of 10); the threshold is 95 % "
        "(the workflow templates' default)"
    ]
    update_test_settings(campaign, operator, completion_pct=90)
    mail.outbox.clear()

    result = force_complete_request(request, operator, "enough statistics for the summer")

    assert (result.percent, result.threshold, result.requests) == (90.0, 90, [request.number])
    request.refresh_from_db()
    assert request.state == RequestState.COMPLETED
    link = CampaignRequest.objects.get(request=request)
    assert (link.abandoned_jobs, link.done_pct, link.abandon_reason) == (
        1,
        90.0,
        "enough statistics for the summer",
    )
    transition = request.transitions.get(action="complete")
    assert transition.actor == operator
    assert "90.0 % of its final jobs done (9 of 10)" in transition.note
    note = Comment.objects.get(request=request, author=None)
    assert f"Missing: {request.samples.get().name}: 1 of 10 jobs not done" in note.body
    assert any(request.requester.email in m.to for m in mail.outbox)
    event = CampaignEvent.objects.get(kind=CampaignEventKind.FORCE_COMPLETED)
    assert event.changes["abandoned_jobs"] == [None, 1]
    assert event.changes["threshold_pct"] == [None, 90]
    # It was the campaign's only request: the campaign is complete too.
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.COMPLETED
    assert CampaignEvent.objects.filter(kind=CampaignEventKind.COMPLETED).exists()
    with pytest.raises(CampaignError):
        force_complete_request(request, operator, "again")

    # The dashboards, the catalogue and the report say which part is missing.
    client.force_login(operator)
    page = client.get(reverse("monitoring:request", args=[request.number])).content.decode()
    assert "Completed in part" in page and "1 job abandoned" in page
    page = client.get(reverse("monitoring:campaign", args=[campaign.pk])).content.decode()
    assert f"<strong>{request.number}</strong>: 90.0 % of the final jobs done" in page
    dataset = Stage.objects.get(campaign=campaign).output_dataset
    page = client.get(reverse("campaigns:dataset_detail", args=[dataset.pk])).content.decode()
    assert "Partial: 1 of 10 jobs of generation were abandoned" in page
    report = status_report(campaign.experiment)
    assert [p["request__number"] for p in report.partial] == [request.number]


def test_jobs_in_flight_are_cancelled_through_the_cancel_path(
    exec_env, fake_backend, experiment, operator
):
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    first, second = (
        approved_request(experiment, template=template, events=100, per_job=10) for _ in range(2)
    )
    campaign = create_campaign(
        operator, experiment, name="two", deadline=first.deadline, backend="local"
    )
    schedule_requests(campaign, [first.pk, second.pk], operator)
    campaign_action(campaign, "launch", operator)
    submission.submit_ready()  # 8 queued at the batch system (its capacity)
    stage = Stage.objects.get(campaign=campaign, request=first)
    assert stage.n_queued == 8
    done = list(Job.objects.filter(stage=stage).order_by("index")[:7])
    Job.objects.filter(pk__in=[j.pk for j in done]).update(state=JobState.SUCCEEDED)
    recount_stages([stage.pk])
    update_test_settings(campaign, operator, completion_pct=70)

    result = force_complete_request(first, operator, "the rest is not needed")

    assert result.cancelled_jobs == 2  # the ready ones, never submitted
    left = Job.objects.get(stage=stage, state=JobState.QUEUED)
    assert CampaignRequest.objects.get(request=first).cancel_pending
    assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.ACTIVE  # second runs on
    polling.cancel_requested()
    assert fake_backend.cancelled == [left.batch_id]  # only the completed request's job
    assert not CampaignRequest.objects.get(request=first).cancel_pending
    # The second request's jobs get the freed slots (8, less the cancelled job until
    # finalize records it); nothing of the first is submitted again.
    polling.poll()
    submission.submit_ready()
    assert not Job.objects.filter(stage=stage, state=JobState.READY).exists()
    assert Job.objects.filter(stage__request=second, state=JobState.QUEUED).count() == 7


def test_force_complete_a_campaign_through_the_api(
    exec_env, fake_backend, experiment, operator, api, liaison
):
    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    campaign, request = launch(experiment, operator, events=40, per_job=10, template=template)
    submission.submit_ready()
    url = f"/api/v1/campaigns/{campaign.pk}/force-complete/"
    assert api(liaison).post(url, {"reason": "x"}, format="json").status_code == 403
    below = api(operator).post(url, {"reason": "x"}, format="json")
    assert below.status_code == 409
    assert below.json()["reasons"] == [
        "done: 0.0 % of the final jobs (0 of 4); the threshold is 95 % "
        "(the workflow templates' default)"
    ]
    Job.objects.filter(index__lt=3).update(state=JobState.SUCCEEDED)
    recount_stages(list(Stage.objects.values_list("id", flat=True)))
    settings_url = f"/api/v1/campaigns/{campaign.pk}/settings/"
    changed = api(operator).post(settings_url, {"completion_pct": 75}, format="json")
    assert changed.status_code == 200 and changed.json()["completion_pct"] == 75

    answer = api(operator).post(url, {"reason": "good enough"}, format="json")

    assert answer.status_code == 200, answer.json()
    assert answer.json() == {
        "campaign": campaign.pk,
        "campaign_state": "completed",
        "requests": [request.number],
        "done_pct": 75.0,
        "threshold_pct": 75,
        "cancelled_jobs": 0,
    }
    assert Campaign.objects.get(pk=campaign.pk).cancel_pending  # one job still queued
    assert ProductionRequest.objects.get(pk=request.pk).state == RequestState.COMPLETED


def test_a_campaign_with_a_request_on_hold_is_refused(exec_env, experiment, operator):
    from requests_app.services import transition

    template = demo_template(experiment, stages=DEMO_STAGES[:1])
    campaign, request = launch(experiment, operator, events=20, per_job=10, template=template)
    update_test_settings(campaign, operator, completion_pct=1)
    transition(request, "hold", operator, "calibration unclear")
    with pytest.raises(CampaignError) as refused:
        force_complete_campaign(campaign, operator, "done")
    assert refused.value.reasons == [f"{request.number}: on hold; resume or cancel it first"]

"""Controls and placement through the services, the admin, the API and the pages (the
batch system's own answers are tested on the real cluster: test_batch_controls_slurm.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns.batch import BackendUnavailable
from campaigns.choices import JobState
from campaigns.execution import backends, controls, submission
from campaigns.models import BatchControl, CampaignEvent, ControlState, Job
from campaigns.services import (
    CampaignError,
    campaign_action,
    create_campaign,
    schedule_requests,
    update_campaign,
)
from campaigns.services.controls import placement_of
from experiments.models import AuditEvent
from requests_app.services import update_request
from tests.campaigns.exec_support import launch
from tests.campaigns.factories import CampaignFactory, approved_request

pytestmark = pytest.mark.django_db


def in_a_year():
    return (timezone.localdate() + dt.timedelta(days=365)).isoformat()


@pytest.fixture
def active(experiment, operator):
    """An active campaign (normal priority) with three jobs queued at a batch system."""
    campaign = CampaignFactory(experiment=experiment, backend="slurm")
    request = approved_request(experiment, events=300, per_job=100, priority="high")
    schedule_requests(campaign, [request.pk], operator)
    campaign_action(campaign, "launch", operator)
    jobs = list(Job.objects.filter(stage__campaign=campaign).order_by("id")[:3])
    for n, job in enumerate(jobs):
        job.state, job.backend, job.batch_id = JobState.QUEUED, "slurm", f"900{n}_{n}"
    Job.objects.bulk_update(jobs, ["state", "backend", "batch_id"])
    return campaign, request, jobs


def pending(campaign, action):
    return BatchControl.objects.filter(
        campaign=campaign, action=action, state=ControlState.PENDING
    ).order_by("job_id")


def test_pause_holds_the_queued_jobs_and_resume_replaces_holds_not_yet_sent(active, operator):
    campaign, _request, jobs = active
    campaign_action(campaign, "pause", operator, "downtime")
    holds = pending(campaign, "hold")
    paused = CampaignEvent.objects.get(campaign=campaign, kind="pause")
    assert [c.job_id for c in holds] == [j.pk for j in jobs]
    assert {c.event_id for c in holds} == {paused.pk}  # recorded with the pause
    campaign_action(campaign, "resume", operator)
    # The holds never reached the batch system: superseded, and releases take their place.
    assert not pending(campaign, "hold").exists()
    assert BatchControl.objects.filter(campaign=campaign, state="superseded").count() == 3
    assert pending(campaign, "release").count() == 3


def test_a_priority_change_carries_the_higher_of_campaign_and_request(active, operator):
    campaign, _request, _jobs = active
    update_campaign(campaign, operator, {"priority": "low"}, reason="other work first")
    # The request is "high": its jobs keep level 2 although the campaign went down to low.
    assert {c.value["level"] for c in pending(campaign, "priority")} == {2}
    update_campaign(campaign, operator, {"priority": "critical"}, reason="conference")
    assert {c.value["level"] for c in pending(campaign, "priority")} == {3}
    assert BatchControl.objects.filter(campaign=campaign, state="superseded").count() == 3


def test_a_request_priority_edit_reaches_its_queued_jobs(active, operator):
    campaign, request, _jobs = active
    update_campaign(campaign, operator, {"priority": "low"}, reason="other work first")
    BatchControl.objects.all().delete()
    update_request(request, operator, {"priority": "critical"}, note="physics case")
    assert {c.value["level"] for c in pending(campaign, "priority")} == {3}
    assert all(c.event_id is None for c in pending(campaign, "priority"))  # the request's


def test_a_partition_to_avoid_is_refused_with_the_field_named(active, operator, experiment):
    campaign, _request, _jobs = active
    experiment.batch_avoid_partitions = "spare, gpu"
    experiment.save()
    with pytest.raises(CampaignError) as info:
        update_campaign(campaign, operator, {"batch_partition": "spare"})
    assert any(p.startswith("batch_partition:") and "avoid" in p for p in info.value.reasons)
    with pytest.raises(CampaignError) as info:
        update_campaign(campaign, operator, {"batch_account": "dune;rm -rf"})
    assert any(p.startswith("batch_account:") for p in info.value.reasons)
    assert not BatchControl.objects.exists()
    assert not CampaignEvent.objects.filter(campaign=campaign, kind="edited").exists()
    # The experiment itself: its partition cannot be one to avoid.
    experiment.batch_partition = "gpu"
    with pytest.raises(ValidationError, match="cannot also be one to avoid"):
        experiment.full_clean()


def test_placement_falls_back_from_campaign_to_experiment_to_site(
    active, operator, experiment, settings
):
    campaign, _request, _jobs = active
    settings.OPOS_BACKEND_OPTIONS = {"slurm": {"partition": "debug", "qos": "normal"}}
    assert (placement_of(campaign).partition, placement_of(campaign).qos) == ("debug", "normal")
    experiment.batch_partition, experiment.batch_account = "spare", "dune"
    experiment.batch_avoid_partitions = "gpu"
    experiment.save()
    campaign.refresh_from_db()
    got = placement_of(campaign)
    assert (got.partition, got.account, got.qos) == ("spare", "dune", "normal")
    assert got.avoid_partitions == ("gpu",)
    update_campaign(campaign, operator, {"batch_partition": "debug", "batch_qos": "long"})
    campaign.refresh_from_db()
    assert (placement_of(campaign).partition, placement_of(campaign).qos) == ("debug", "long")
    moves = pending(campaign, "move")
    assert moves.count() == 3
    assert moves[0].value["partition"] == "debug" and moves[0].value["account"] == "dune"


def test_create_campaign_takes_a_placement(operator, experiment):
    campaign = create_campaign(
        operator,
        experiment,
        name="MCC6",
        deadline=in_a_year(),
        backend="slurm",
        batch_partition="spare",
        batch_qos="high",
    )
    assert (campaign.batch_partition, campaign.batch_qos) == ("spare", "high")
    with pytest.raises(CampaignError, match="cannot be created"):
        create_campaign(operator, experiment, name="x", deadline=in_a_year(), batch_color="red")


def test_unreachable_batch_system_leaves_controls_pending_without_an_attempt(
    active, operator, monkeypatch
):
    campaign, _request, _jobs = active
    campaign_action(campaign, "pause", operator)

    class Down:
        def hold(self, ids):
            raise BackendUnavailable("scontrol: error: Unable to contact slurm controller")

    monkeypatch.setattr(backends, "backend", lambda name: Down())
    report = controls.apply_pending()
    assert (report.retrying, report.done, report.failed) == (3, 0, 0)
    assert [c.attempts for c in pending(campaign, "hold")] == [0, 0, 0]


def test_a_job_that_started_before_its_control_is_skipped(active, operator, monkeypatch):
    campaign, _request, jobs = active
    campaign_action(campaign, "pause", operator)
    Job.objects.filter(pk=jobs[0].pk).update(state=JobState.RUNNING)
    asked = []

    class Up:
        def hold(self, ids):
            asked.extend(ids)
            return {}  # no answer for a job counts as a refusal, tried again

    monkeypatch.setattr(backends, "backend", lambda name: Up())
    report = controls.apply_pending()
    assert report.skipped == 1 and asked == [jobs[1].batch_id, jobs[2].batch_id]
    skipped = BatchControl.objects.get(job=jobs[0])
    assert (skipped.state, skipped.detail) == ("skipped", "job is running")
    assert report.retrying == 2


def test_submission_uses_the_placement_and_the_priority(
    exec_env, fake_backend, experiment, operator, monkeypatch
):
    experiment.batch_partition = "spare"
    experiment.save()
    campaign, _request = launch(experiment, operator, priority="critical")
    update_campaign(campaign, operator, {"batch_account": "dune-mc"})
    specs = []
    real_submit = fake_backend.submit
    monkeypatch.setattr(
        fake_backend, "submit", lambda spec, start=0: specs.append(spec) or real_submit(spec)
    )
    submission.submit_ready()
    assert specs
    assert {(s.partition, s.account, s.priority) for s in specs} == {("spare", "dune-mc", 3)}


def test_experiment_placement_change_in_the_admin_moves_queued_jobs(
    client, admin_user, active, experiment
):
    campaign, _request, jobs = active
    client.force_login(admin_user)
    url = f"/admin/experiments/experiment/{experiment.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200 and "Where the work runs" in page.content.decode()
    form = page.context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    for inline in page.context["inline_admin_formsets"]:  # the inlines, left unchanged
        prefix = inline.formset.prefix
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    data.update({"batch_partition": "spare", "batch_avoid_partitions": "debug"})
    data["sla_accepted_on"] = data.get("sla_accepted_on") or ""
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    experiment.refresh_from_db()
    assert experiment.batch_partition == "spare"
    event = CampaignEvent.objects.get(campaign=campaign, kind="edited")
    assert event.changes["experiment batch_partition"] == ["", "spare"]
    moves = pending(campaign, "move")
    assert [c.job_id for c in moves] == [j.pk for j in jobs]
    assert moves[0].value["partition"] == "spare"
    assert moves[0].value["avoid_partitions"] == ["debug"]
    assert AuditEvent.objects.filter(action="admin_change_experiment").exists()
    # Its own partition to avoid as well: refused, nothing changes.
    data["batch_avoid_partitions"] = "spare"
    response = client.post(url, data)
    assert (
        response.status_code == 200 and "cannot also be one to avoid" in response.content.decode()
    )


def test_api_edits_the_placement_and_shows_the_controls(api, active, operator, liaison):
    campaign, _request, _jobs = active
    client = api(operator)
    response = client.patch(
        f"/api/v1/campaigns/{campaign.pk}/", {"batch_partition": "spare"}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["batch_partition"] == "spare"
    assert body["batch_controls"] == {"pending": 3, "failed": 0}
    reply = client.get(f"/api/v1/campaigns/{campaign.pk}/batch-controls/?state=pending")
    assert reply.status_code == 200, reply.content
    listed = reply.json()
    assert {row["action"] for row in listed} == {"move"} and len(listed) == 3
    assert listed[0]["value"]["partition"] == "spare" and listed[0]["batch_id"]
    bad = client.get(f"/api/v1/campaigns/{campaign.pk}/batch-controls/?state=maybe")
    assert bad.status_code == 400 and "state" in bad.json()
    # A liaison sees them, and cannot change the placement.
    assert api(liaison).get(f"/api/v1/campaigns/{campaign.pk}/").json()["batch_partition"]
    refused = api(liaison).patch(
        f"/api/v1/campaigns/{campaign.pk}/", {"batch_partition": "debug"}, format="json"
    )
    assert refused.status_code == 403


def test_campaign_page_edits_the_placement_and_shows_where_work_runs(client, active, operator):
    campaign, _request, _jobs = active
    client.force_login(operator)
    page = client.get(campaign.get_absolute_url()).content.decode()
    assert "At the batch system" in page and 'name="batch_partition"' in page
    response = client.post(
        f"/campaigns/{campaign.pk}/edit/",
        {
            "priority": campaign.priority,
            "deadline": campaign.deadline.isoformat(),
            "throttle": "",
            "batch_partition": "spare",
            "batch_account": "",
            "batch_qos": "",
            "batch_requirements": "",
            "reason": "",
        },
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.batch_partition == "spare"
    page = client.get(campaign.get_absolute_url()).content.decode()
    assert "3 pending" in page

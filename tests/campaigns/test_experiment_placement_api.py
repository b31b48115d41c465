"""An experiment's placement over the REST API: the admin form's checks and audit, and the
open campaigns' queued jobs move (the batch system's answer: test_batch_controls_slurm.py)."""

from __future__ import annotations

import pytest

from campaigns.choices import JobState
from campaigns.models import BatchControl, CampaignEvent, ControlState, Job
from campaigns.services import campaign_action, schedule_requests
from experiments.models import AuditEvent
from tests.campaigns.factories import CampaignFactory, approved_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued_campaign(experiment, operator):
    campaign = CampaignFactory(experiment=experiment, backend="slurm")
    request = approved_request(experiment, events=300, per_job=100)
    schedule_requests(campaign, [request.pk], operator)
    campaign_action(campaign, "launch", operator)
    jobs = list(Job.objects.filter(stage__campaign=campaign).order_by("id")[:2])
    for n, job in enumerate(jobs):
        job.state, job.backend, job.batch_id = JobState.QUEUED, "slurm", f"700{n}_{n}"
    Job.objects.bulk_update(jobs, ["state", "backend", "batch_id"])
    return campaign, jobs


def url(experiment) -> str:
    return f"/api/v1/experiments/{experiment.slug}/placement/"


def test_operator_changes_the_placement_and_queued_jobs_move(
    api, operator, experiment, queued_campaign
):
    campaign, jobs = queued_campaign
    response = api(operator).post(
        url(experiment),
        {
            "batch_partition": "spare",
            "batch_account": "dune-prod",
            "batch_avoid_partitions": "debug ,gpu",
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["batch_partition"] == "spare" and body["batch_avoid_partitions"] == "debug, gpu"
    assert body["changed"]["batch_account"] == ["", "dune-prod"]
    experiment.refresh_from_db()
    assert (experiment.batch_partition, experiment.avoided_partitions) == (
        "spare",
        ["debug", "gpu"],
    )
    audit = AuditEvent.objects.get(action="change_experiment_placement")
    assert audit.actor == operator and audit.experiment == experiment
    assert audit.data["changed"]["batch_partition"] == "spare"
    assert audit.data["previous"]["batch_partition"] == ""
    event = CampaignEvent.objects.get(campaign=campaign, kind="edited")
    assert event.changes["experiment batch_partition"] == ["", "spare"]
    moves = BatchControl.objects.filter(
        campaign=campaign, action="move", state=ControlState.PENDING
    )
    assert sorted(m.job_id for m in moves) == sorted(j.pk for j in jobs)
    assert {m.value["partition"] for m in moves} == {"spare"}
    assert moves[0].value["avoid_partitions"] == ["debug", "gpu"]
    # The same values again: nothing changes, nothing is recorded, nothing moves.
    again = api(operator).post(url(experiment), {"batch_partition": "spare"}, format="json")
    assert again.status_code == 200 and again.json()["changed"] == {}
    assert AuditEvent.objects.filter(action="change_experiment_placement").count() == 1
    assert moves.count() == 2
    # Shown on the experiment too.
    shown = api(operator).get(f"/api/v1/experiments/{experiment.slug}/").json()
    assert shown["batch_account"] == "dune-prod"


@pytest.mark.parametrize(
    "data, field, words",
    [
        ({"batch_partition": "x; rm -rf /"}, "batch_partition", "batch system name"),
        ({"batch_avoid_partitions": "a,,b;c"}, "batch_avoid_partitions", "separated by commas"),
        ({"batch_requirements": "a\nb"}, "batch_requirements", "One line"),
        ({"batch_qos": "hi\ngh"}, "batch_qos", "batch system name"),
        ({"partition": "spare"}, "partition", "not a placement field"),
        ({}, "non_field_errors", "give one or more"),
    ],
)
def test_bad_values_are_refused_naming_the_field(api, operator, experiment, data, field, words):
    response = api(operator).post(url(experiment), data, format="json")
    assert response.status_code == 400, response.content
    assert words in str(response.json()[field])
    assert not AuditEvent.objects.filter(action="change_experiment_placement").exists()


def test_own_partition_cannot_be_one_to_avoid(api, operator, experiment, queued_campaign):
    campaign, _jobs = queued_campaign
    response = api(operator).post(
        url(experiment),
        {"batch_partition": "spare", "batch_avoid_partitions": "spare"},
        format="json",
    )
    assert response.status_code == 400
    assert "cannot also be one to avoid" in str(response.json()["batch_avoid_partitions"])
    experiment.refresh_from_db()
    assert experiment.batch_partition == ""  # nothing written
    assert not BatchControl.objects.filter(campaign=campaign).exists()


def test_members_may_read_but_not_change_it(api, liaison, other_liaison, experiment):
    assert (
        api(liaison).post(url(experiment), {"batch_qos": "high"}, format="json").status_code == 403
    )
    # Another experiment's liaison is not told it exists.
    assert (
        api(other_liaison).post(url(experiment), {"batch_qos": "high"}, format="json").status_code
        == 404
    )
    experiment.refresh_from_db()
    assert experiment.batch_qos == ""

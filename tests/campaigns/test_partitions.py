"""Partitions' capacity and the experiments' quotas on them: the service (checks, audit),
the scheduler's input from the database, the REST API, the browser page and the operations
dashboard (bounded queries). On the real cluster: test_partitions_slurm.py."""

from __future__ import annotations

import pytest

from campaigns.choices import JobState, WaitReason
from campaigns.models import Job, Partition, PartitionQuota, Stage
from campaigns.services import (
    CampaignError,
    campaign_action,
    plan_cycle,
    recount_stages,
    schedule_requests,
)
from campaigns.services import partitions as service
from experiments.models import AuditEvent
from tests.campaigns.factories import CampaignFactory, approved_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def active(experiment, operator, settings):
    """An active Slurm campaign running in partition "spare": 10 generation jobs ready."""
    settings.OPOS_BACKEND_CAPACITY = {"slurm": 50}
    campaign = CampaignFactory(experiment=experiment, backend="slurm", batch_partition="spare")
    request = approved_request(experiment, events=1000, per_job=100)
    schedule_requests(campaign, [request.pk], operator)
    return campaign_action(campaign, "launch", operator)


def first_stage(campaign) -> Stage:
    return Stage.objects.filter(campaign=campaign).order_by("position").first()


def test_set_change_and_remove_a_partition_are_audited(operator):
    partition = service.set_partition(operator, "spare", 40, description="old nodes", reason="r1")
    assert (partition.backend, partition.key, partition.capacity) == ("slurm", "slurm:spare", 40)
    service.set_partition(operator, "spare", 25, reason="half the nodes drained")
    service.set_partition(operator, "spare", 25)  # no change: no event
    events = list(AuditEvent.objects.filter(action="set_partition").order_by("id"))
    assert [e.data["values"]["capacity"] for e in events] == [40, 25]
    assert events[0].data["previous"] is None and events[1].data["previous"]["capacity"] == 40
    assert events[1].data["reason"] == "half the nodes drained" and events[1].actor == operator
    service.remove_partition(operator, Partition.objects.get(), "decommissioned")
    gone = AuditEvent.objects.get(action="remove_partition")
    assert gone.data["previous"]["capacity"] == 25 and not Partition.objects.exists()


@pytest.mark.parametrize(
    "name, capacity, backend, words",
    [
        ("spa re", 10, "slurm", "name: Letters, digits"),
        ("", 10, "slurm", "name: "),
        ("spare", -1, "slurm", "capacity: a whole number"),
        ("spare", "ten", "slurm", "capacity: a whole number"),
        ("spare", 10, "pbs", "backend: 'pbs' is not a configured batch endpoint"),
    ],
)
def test_bad_partitions_are_refused_naming_the_field(operator, name, capacity, backend, words):
    with pytest.raises(CampaignError) as refused:
        service.set_partition(operator, name, capacity, backend=backend)
    assert words in str(refused.value)
    assert not Partition.objects.exists()
    assert not AuditEvent.objects.filter(action__contains="partition").exists()


def test_only_operators_declare_partitions(liaison):
    with pytest.raises(CampaignError) as refused:
        service.set_partition(liaison, "spare", 10)
    assert refused.value.kind == "forbidden"


def test_quota_as_jobs_share_or_both_and_cleared(operator, experiment):
    partition = service.set_partition(operator, "spare", 40)
    quota = service.set_quota(operator, partition, experiment, share_pct=25, reason="fair share")
    assert quota.limit == 10
    quota = service.set_quota(operator, partition, experiment, max_jobs=6, share_pct=25)
    assert quota.limit == 6  # the lower wins
    assert service.partition_limits().quotas == {(experiment.pk, "slurm:spare"): 6}
    with pytest.raises(CampaignError) as refused:
        service.set_quota(operator, partition, experiment, share_pct=150)
    assert "share_pct: a whole percentage from 1 to 100" in str(refused.value)
    assert service.set_quota(operator, partition, experiment) is None
    assert not PartitionQuota.objects.exists()
    actions = list(
        AuditEvent.objects.filter(experiment=experiment)
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["set_partition_quota", "set_partition_quota", "clear_partition_quota"]


def test_the_scheduler_submits_no_more_than_the_partition_allows(active, operator, experiment):
    gen = first_stage(active)
    assert plan_cycle().submissions() == [(gen.pk, 10)]  # undeclared: no limit of its own
    partition = service.set_partition(operator, "spare", 4)
    plan = plan_cycle()
    assert plan.submissions() == [(gen.pk, 4)]
    assert plan.decision.stages[gen.pk].reason == WaitReason.PARTITION
    assert "partition spare capacity 4 reached" in plan.decision.stages[gen.pk].detail
    # Jobs in flight there count, from the counters execution keeps.
    Job.objects.filter(stage=gen, index__in=[0, 1, 2]).update(
        state=JobState.RUNNING, backend="slurm"
    )
    recount_stages([gen.pk])
    assert plan_cycle().submissions() == [(gen.pk, 1)]
    service.set_quota(operator, partition, experiment, max_jobs=3)
    plan = plan_cycle()
    assert plan.submissions() == []
    assert "quota 3 on partition spare" in plan.decision.stages[gen.pk].detail
    # The campaign's work moves to another partition: the limits of "spare" no longer apply.
    active.batch_partition = "debug"
    active.save(update_fields=["batch_partition"])
    assert plan_cycle().submissions() == [(gen.pk, 7)]


def test_the_experiment_partition_and_the_site_default_are_where_work_runs(
    experiment, operator, settings
):
    settings.OPOS_BACKEND_CAPACITY = {"slurm": 50}
    settings.OPOS_BACKEND_OPTIONS = {
        **settings.OPOS_BACKEND_OPTIONS,
        "slurm": {**settings.OPOS_BACKEND_OPTIONS["slurm"], "partition": "debug"},
    }
    campaign = CampaignFactory(experiment=experiment, backend="slurm")
    request = approved_request(experiment, events=1000, per_job=100)
    schedule_requests(campaign, [request.pk], operator)
    campaign_action(campaign, "launch", operator)
    gen = first_stage(campaign)
    service.set_partition(operator, "debug", 2)
    service.set_partition(operator, "spare", 5)
    assert plan_cycle().submissions() == [(gen.pk, 2)]  # the site's default: debug
    experiment.batch_partition = "spare"
    experiment.save(update_fields=["batch_partition"])
    assert plan_cycle().submissions() == [(gen.pk, 5)]  # the experiment's


def test_plan_cycle_queries_stay_fixed(active, operator, experiment, django_assert_max_num_queries):
    partition = service.set_partition(operator, "spare", 4)
    service.set_quota(operator, partition, experiment, max_jobs=3)
    for _n in range(3):
        other = CampaignFactory(experiment=experiment, backend="slurm", batch_partition="spare")
        schedule_requests(
            other, [approved_request(experiment, events=300, per_job=100).pk], operator
        )
        campaign_action(other, "launch", operator)
    with django_assert_max_num_queries(5):
        plan = plan_cycle()
    assert sum(n for _s, n in plan.submissions()) == 3


# --- REST API -----------------------------------------------------------------------------


def test_api_declares_partitions_and_quotas(api, operator, experiment, active):
    client = api(operator)
    made = client.post(
        "/api/v1/partitions/", {"name": "spare", "capacity": 8, "reason": "r"}, format="json"
    )
    assert made.status_code == 201, made.content
    body = made.json()
    assert (body["backend"], body["name"], body["capacity"], body["in_flight"]) == (
        "slurm",
        "spare",
        8,
        0,
    )
    pk = body["id"]
    quota = client.post(
        f"/api/v1/partitions/{pk}/quota/",
        {"experiment": experiment.slug, "share_pct": 50},
        format="json",
    )
    assert quota.status_code == 200, quota.content
    assert quota.json()["quotas"] == [
        {
            "experiment": experiment.slug,
            "max_jobs": None,
            "share_pct": 50,
            "limit": 4,
            "in_flight": 0,
        }
    ]
    Job.objects.filter(stage=first_stage(active), index__in=[0, 1]).update(state=JobState.QUEUED)
    recount_stages([first_stage(active).pk])
    shown = client.get("/api/v1/partitions/?backend=slurm&name=spare").json()["results"]
    assert shown[0]["in_flight"] == 2 and shown[0]["quotas"][0]["in_flight"] == 2
    changed = client.patch(f"/api/v1/partitions/{pk}/", {"capacity": 2}, format="json")
    assert changed.status_code == 200 and changed.json()["quotas"][0]["limit"] == 1
    bad = client.patch(f"/api/v1/partitions/{pk}/", {"capacity": -3}, format="json")
    assert bad.status_code == 400 and "capacity: a whole number" in str(bad.json())
    unknown = client.post(
        f"/api/v1/partitions/{pk}/quota/", {"experiment": "nope", "max_jobs": 1}, format="json"
    )
    assert unknown.status_code == 400 and "experiment" in unknown.json()
    assert client.delete(f"/api/v1/partitions/{pk}/?reason=gone").status_code == 204
    assert AuditEvent.objects.get(action="remove_partition").data["reason"] == "gone"


def test_api_is_for_operators_only(api, liaison, operator, django_assert_max_num_queries):
    for n in range(5):
        partition = service.set_partition(operator, f"p{n}", 10)
    assert api(liaison).get("/api/v1/partitions/").status_code == 403
    refused = api(liaison).post("/api/v1/partitions/", {"name": "x", "capacity": 1}, format="json")
    assert refused.status_code == 403
    client = api(operator)
    client.get("/api/v1/partitions/")  # the token's first use records itself
    with django_assert_max_num_queries(8):
        page = client.get("/api/v1/partitions/")
    assert page.status_code == 200 and page.json()["count"] == 5
    assert partition.name == "p4"


# --- browser ------------------------------------------------------------------------------


def test_partitions_page_declares_and_sets_quotas(
    client, operator, experiment, django_assert_max_num_queries
):
    client.force_login(operator)
    response = client.post(
        "/campaigns/partitions/",
        {"backend": "slurm", "name": "spare", "capacity": "12", "description": "", "reason": "new"},
    )
    assert response.status_code == 302
    partition = Partition.objects.get(name="spare")
    response = client.post(
        f"/campaigns/partitions/{partition.pk}/quota/",
        {"experiment": experiment.slug, "max_jobs": "5", "share_pct": ""},
    )
    assert response.status_code == 302
    assert PartitionQuota.objects.get().limit == 5
    for n in range(4):
        service.set_partition(operator, f"extra{n}", 3)
    with django_assert_max_num_queries(12):
        page = client.get("/campaigns/partitions/")
    text = page.content.decode()
    assert page.status_code == 200
    assert "Capacity <strong>12</strong>" in text and experiment.slug in text
    # A bad capacity is shown next to its field; nothing written.
    page = client.post(
        "/campaigns/partitions/", {"backend": "slurm", "name": "x y", "capacity": "2"}
    )
    assert page.status_code == 200 and "Letters, digits" in page.content.decode()
    assert not Partition.objects.filter(name="x y").exists()
    response = client.post(f"/campaigns/partitions/{partition.pk}/remove/", {"reason": "gone"})
    assert response.status_code == 302 and not Partition.objects.filter(pk=partition.pk).exists()


def test_members_cannot_reach_the_page(client, liaison):
    client.force_login(liaison)
    assert client.get("/campaigns/partitions/").status_code == 403


def test_operations_dashboard_shows_the_partitions(client, operator, experiment, active):
    partition = service.set_partition(operator, "spare", 8)
    service.set_quota(operator, partition, experiment, max_jobs=3)
    Job.objects.filter(stage=first_stage(active), index__in=[0, 1]).update(state=JobState.RUNNING)
    recount_stages([first_stage(active).pk])
    client.force_login(operator)
    text = client.get("/monitoring/operations/").content.decode()
    assert 'id="partitions-heading"' in text
    assert f"{experiment.slug} 2 / 3" in text and "2 (25.0%)" in text


def test_campaign_page_says_the_partition_holds_work_back(client, operator, active):
    service.set_partition(operator, "spare", 4)
    client.force_login(operator)
    text = client.get(active.get_absolute_url()).content.decode()
    assert "why-partition" in text and "Partition capacity or quota reached" in text
    assert "6 ready jobs wait: partition spare capacity 4 reached" in text

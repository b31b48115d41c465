"""Partition capacity and experiments' quotas on a partition in the scheduling policy (pure
Python, no database): never exceeded, counted with what is in flight, the most urgent first,
and the wait explained."""

from dataclasses import replace

from campaigns.choices import WaitReason
from campaigns.scheduler import SchedulerInput, campaign_share, decide
from tests.campaigns.test_scheduler_policy import H, camp, stage


def run(campaigns, partition_capacity=None, partition_quotas=None, **kw):
    inp = SchedulerInput(
        now=0.0,
        capacity={"slurm": 100},
        quotas={1: 1000, 2: 1000},
        campaigns=campaigns,
        partition_capacity=partition_capacity or {},
        partition_quotas=partition_quotas or {},
        **kw,
    )
    return decide(inp, "slack")


def on(campaign, partition):
    return replace(campaign, partition=partition)


def test_a_partition_capacity_caps_what_its_campaigns_submit_most_urgent_first():
    urgent = on(camp(1, [stage(1, ready=30)], deadline_h=20), "slurm:debug")
    relaxed = on(camp(2, [stage(2, ready=30)], deadline_h=500, exp=2), "slurm:debug")
    elsewhere = on(camp(3, [stage(3, ready=30)], deadline_h=500), "slurm:spare")
    d = run([urgent, relaxed, elsewhere], partition_capacity={"slurm:debug": 12})
    # The starvation floor gives the relaxed campaign its one slot, the urgent one the rest.
    assert (d.campaigns[1].submit, d.campaigns[2].submit) == (11, 1)
    # Another partition (no limit of its own) is not held back by the full one.
    assert d.campaigns[3].submit == 30
    row = d.stages[urgent.stages[0].stage_id]
    assert row.reason == WaitReason.PARTITION
    assert row.detail == "19 ready jobs wait: partition debug capacity 12 reached"
    assert d.campaigns[1].reason == WaitReason.PARTITION


def test_jobs_in_flight_count_against_the_partition():
    busy = on(camp(1, [stage(1, ready=10, in_flight=8)], deadline_h=50), "slurm:debug")
    d = run([busy], partition_capacity={"slurm:debug": 10})
    assert d.campaigns[1].submit == 2
    # Given from outside (a cancelled campaign still draining there): counted as given.
    d = run(
        [busy],
        partition_capacity={"slurm:debug": 10},
        in_flight_partition={"slurm:debug": 10},
        in_flight_experiment_partition={},
    )
    assert d.campaigns[1].submit == 0


def test_an_experiment_quota_on_a_partition_leaves_room_to_the_others():
    a = on(camp(1, [stage(1, ready=30)], deadline_h=20), "slurm:debug")
    b = on(camp(2, [stage(2, ready=30)], deadline_h=500, exp=2), "slurm:debug")
    d = run(
        [a, b],
        partition_capacity={"slurm:debug": 20},
        partition_quotas={(1, "slurm:debug"): 5},
    )
    assert (d.campaigns[1].submit, d.campaigns[2].submit) == (5, 15)
    row = d.stages[a.stages[0].stage_id]
    assert row.reason == WaitReason.PARTITION
    assert row.detail == "25 ready jobs wait: the experiment's quota 5 on partition debug reached"
    # The quota holds on that partition only: the experiment's work elsewhere is not capped.
    away = on(camp(3, [stage(3, ready=30)], deadline_h=20), "slurm:spare")
    d = run([a, away], partition_quotas={(1, "slurm:debug"): 5})
    assert (d.campaigns[1].submit, d.campaigns[3].submit) == (5, 30)


def test_the_share_and_the_slack_see_the_partition_limit():
    # 40 job-hours at 4 slots: 10 hours; with the backend's 100 slots it would look like 1.
    c = on(camp(1, [stage(1, ready=40)], deadline_h=24), "slurm:debug")
    assert campaign_share(c, {"slurm": 100}, {}, {"slurm:debug": 4}) == 4
    assert campaign_share(c, {"slurm": 100}, {}, {"slurm:debug": 8}, {(1, "slurm:debug"): 3}) == 3
    d = run([c], partition_capacity={"slurm:debug": 4})
    assert d.campaigns[1].share == 4
    assert d.campaigns[1].slack_s == 24 * H - 10 * H


def test_no_partition_named_or_declared_means_no_partition_limit():
    plain = camp(1, [stage(1, ready=30)], deadline_h=50)  # the batch system picks
    d = run([plain], partition_capacity={"slurm:debug": 1})
    assert d.campaigns[1].submit == 30
    undeclared = on(camp(2, [stage(2, ready=30)], deadline_h=50, exp=2), "slurm:gpu")
    d = run([undeclared], partition_capacity={"slurm:debug": 1})
    assert d.campaigns[2].submit == 30


def test_the_projection_orders_and_shares_with_the_partition_limits():
    from campaigns.scheduler import project, project_each

    c = on(camp(1, [stage(1, ready=40)], deadline_h=24), "slurm:debug")
    inp = SchedulerInput(
        now=0.0,
        capacity={"slurm": 100},
        quotas={1: 1000},
        campaigns=[c],
        partition_capacity={"slurm:debug": 4},
    )
    assert project(inp)[1].share == 4
    extra = on(camp(2, [stage(2, ready=40)], deadline_h=24), "slurm:debug")
    (alone,) = project_each(inp, [extra])
    assert alone.share == 4  # the scenario keeps the partition limits

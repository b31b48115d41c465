"""Priority inside the deadline policy: it orders work where slack allows, never costing a
deadline least slack first would meet (pure Python and the simulator, no database)."""

from pathlib import Path

import pytest
from django.conf import settings

from campaigns.scheduler import (
    CampaignLoad,
    SchedulerInput,
    StageLoad,
    decide,
    priority_order,
    project,
    request_order,
)
from campaigns.simulator import load_scenario, simulate

H = 3600.0
SCENARIOS = sorted((Path(settings.BASE_DIR) / "campaigns" / "scenarios").glob("*.yaml"))


def req_stage(stage_id, group, deadline_h, priority, ready, walltime=H):
    return StageLoad(
        stage_id=stage_id,
        campaign_id=1,
        position=0,
        ready=ready,
        planned=0,
        in_flight=0,
        walltime_s=walltime,
        request_id=group,
        request_deadline=deadline_h * H,
        request_priority=priority,
    )


def one_campaign(stages, deadline_h=1000):
    return CampaignLoad(1, 1, "slurm", "active", 1, deadline_h * H, tuple(stages))


def first_served(decision):
    """The stage that got slots first: the only one that got any when capacity is short."""
    return [sid for sid, row in decision.stages.items() if row.submit]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_no_shipped_scenario_loses_a_deadline_to_priority(path):
    scenario = load_scenario(path)
    ours = simulate(scenario, "slack")
    yardstick = simulate(scenario, "slack-only")
    assert ours.met >= yardstick.met
    met_without = {o.name for o in yardstick.outcomes if o.met}
    met_with = {o.name for o in ours.outcomes if o.met}
    assert met_without <= met_with, f"priority cost {sorted(met_without - met_with)}"


def test_there_is_a_shipped_scenario_where_priority_decides():
    scenario = load_scenario(next(p for p in SCENARIOS if p.stem == "priority"))
    ours = {o.name: o for o in simulate(scenario, "slack").outcomes}
    yardstick = {o.name: o for o in simulate(scenario, "slack-only").outcomes}
    assert all(o.met for o in ours.values()) and all(o.met for o in yardstick.values())
    # The critical sample is served first: done more than two days sooner ...
    assert ours["oscillations"].finish_s < yardstick["oscillations"].finish_s - 48 * H
    # ... the low-priority calibration waits for it, within its deadline ...
    assert ours["calibration"].finish_s > yardstick["calibration"].finish_s
    # ... and the campaign that could not wait was not passed.
    assert ours["beam-monitoring"].finish_s <= 18 * H


def test_inside_a_campaign_priority_goes_first_where_the_others_can_wait():
    # Request 1 (normal, due in 30 h) and request 2 (critical, due in 100 h), 10 hours of
    # work each on 10 slots: deadline order serves 1 first; 1 can wait for 2 and still make it.
    stages = [req_stage(11, 1, 30, 1, ready=100), req_stage(12, 2, 100, 3, ready=100)]
    assert request_order(stages, 0.0, 10) == {2: 0, 1: 1}
    d = decide(SchedulerInput(0.0, {"slurm": 10}, {1: 10}, [one_campaign(stages)]))
    assert first_served(d) == [12]
    # Due in 15 h, request 1 cannot wait 10 hours more: deadline order stands.
    stages = [req_stage(21, 1, 15, 1, ready=100), req_stage(22, 2, 100, 3, ready=100)]
    assert request_order(stages, 0.0, 10) == {1: 0, 2: 1}
    d = decide(SchedulerInput(0.0, {"slurm": 10}, {1: 10}, [one_campaign(stages)]))
    assert first_served(d) == [21]
    # The slack-only yardstick keeps deadline order.
    stages = [req_stage(31, 1, 30, 1, ready=100), req_stage(32, 2, 100, 3, ready=100)]
    d = decide(SchedulerInput(0.0, {"slurm": 10}, {1: 10}, [one_campaign(stages)]), "slack-only")
    assert first_served(d) == [31]


def test_inside_a_campaign_priority_breaks_ties_of_deadline():
    stages = [req_stage(41, 1, 5, 0, ready=100), req_stage(42, 2, 5, 2, ready=100)]
    # Both are late whatever the order; the same deadline, so priority decides.
    assert request_order(stages, 0.0, 10) == {2: 0, 1: 1}


def test_a_request_late_anyway_is_not_protected_but_one_on_time_is():
    # Three requests; the low one is late in any order, the normal one is on time in
    # deadline order and must stay so; the critical one goes as early as that allows.
    stages = [
        req_stage(51, 1, 2, 0, ready=100),  # 10 h of work due in 2 h: late anyway
        req_stage(52, 2, 25, 1, ready=100),
        req_stage(53, 3, 200, 3, ready=100),
    ]
    order = request_order(stages, 0.0, 10)
    assert order[3] < order[1]  # the late one does not hold the critical one back
    finish = {}
    done = 0.0
    for gid in sorted(order, key=order.get):
        done += 10 * H
        finish[gid] = done
    assert finish[2] <= 25 * H


def test_the_projection_serves_campaigns_in_the_order_decide_does():
    low = CampaignLoad(1, 1, "slurm", "active", 0, 30 * H, (req_stage(61, 1, 30, 0, 40),))
    critical = CampaignLoad(
        2, 1, "slurm", "active", 3, 120 * H, (StageLoad(62, 2, 0, 40, 0, 0, H, request_id=2),)
    )
    inp = SchedulerInput(0.0, {"slurm": 10}, {1: 10}, [low, critical])
    assert decide(inp).campaigns[2].rank == 0
    proj = project(inp)
    assert proj[2].finish < proj[1].finish <= 30 * H


def test_priority_order_never_passes_a_hopeless_campaign_or_an_equal():
    class Item:
        def __init__(self, cid, priority, slack, duration):
            self.campaign = CampaignLoad(cid, 1, "slurm", "active", priority, 0.0, ())
            self.slack, self.duration = slack, duration

    hopeless = Item(1, 0, -5 * H, 10 * H)
    equal = Item(2, 3, 50 * H, 2 * H)
    critical = Item(3, 3, 60 * H, 2 * H)
    order = priority_order([equal, critical, hopeless], 3600)
    assert [i.campaign.campaign_id for i in order] == [2, 3, 1]
    # Two campaigns passing the same one both count against its slack.
    low = Item(4, 0, 5 * H, 1 * H)
    a, b = Item(5, 2, 80 * H, 2 * H), Item(6, 2, 90 * H, 3 * H)
    order = priority_order([low, a, b], 3600)
    assert [i.campaign.campaign_id for i in order] == [5, 4, 6]


def test_inside_a_campaign_priority_never_makes_an_on_time_request_late():
    """On many random campaigns: every request on time in deadline order (by the fluid
    estimate) is on time in the priority order too."""
    import random

    rng = random.Random(7)
    for _ in range(300):
        n = rng.randint(2, 9)
        stages = [
            req_stage(
                100 + g,
                g,
                deadline_h=rng.uniform(1, 60),
                priority=rng.randint(0, 3),
                ready=rng.randint(1, 120),
            )
            for g in range(n)
        ]
        share = rng.randint(1, 20)
        work = {s.request_id: s.ready * s.walltime_s / share for s in stages}
        due = {s.request_id: s.request_deadline for s in stages}

        def finishes(order, work=work):
            done, out = 0.0, {}
            for gid in order:
                done += work[gid]
                out[gid] = max(done, H)  # the chain: one stage of an hour
            return out

        edf = sorted(due, key=lambda gid: (due[gid], gid))
        on_time = {gid for gid, t in finishes(edf).items() if t <= due[gid]}
        ranks = request_order(stages, 0.0, share)
        ordered = sorted(ranks, key=ranks.get)
        assert sorted(ordered) == sorted(due)
        late = {gid for gid, t in finishes(ordered).items() if t > due[gid]}
        assert not (on_time & late)

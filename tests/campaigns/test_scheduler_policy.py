"""The scheduling policy on small hand-made cases (pure Python, no database)."""

import pytest

from campaigns.choices import WaitReason
from campaigns.scheduler import CampaignLoad, SchedulerInput, StageLoad, decide

H = 3600.0
_ids = iter(range(1, 10_000))


def stage(
    cid, ready=0, planned=0, in_flight=0, walltime=H, position=0, request_id=1, deadline=None
):
    return StageLoad(
        stage_id=next(_ids),
        campaign_id=cid,
        position=position,
        ready=ready,
        planned=planned,
        in_flight=in_flight,
        walltime_s=walltime,
        request_id=request_id,
        request_deadline=deadline if deadline is not None else float("inf"),
    )


def camp(cid, stages, deadline_h, priority=1, throttle=None, exp=1, backend="slurm", **kw):
    return CampaignLoad(
        campaign_id=cid,
        experiment_id=exp,
        backend=backend,
        state=kw.pop("state", "active"),
        priority=priority,
        deadline=deadline_h * H,
        stages=tuple(stages),
        throttle=throttle,
        arrival=kw.pop("arrival", float(cid)),
    )


def run(campaigns, capacity=10, quotas=None, policy="slack", **kw):
    inp = SchedulerInput(
        now=0.0,
        capacity={"slurm": capacity, "local": 4},
        quotas=quotas or {1: 1000, 2: 1000},
        campaigns=campaigns,
        **kw,
    )
    return decide(inp, policy)


def submitted(decision, cid):
    return decision.campaigns[cid].submit


def test_least_slack_first():
    # Same work (40 job-hours); the deadline of 2 is much closer.
    relaxed = camp(1, [stage(1, ready=40)], deadline_h=100)
    urgent = camp(2, [stage(2, ready=40)], deadline_h=10)
    d = run([relaxed, urgent])
    assert d.campaigns[2].rank == 0
    # Each gets its starvation-floor slot, then the urgent one takes the rest.
    assert (submitted(d, 2), submitted(d, 1)) == (9, 1)


def test_slack_accounts_for_remaining_work():
    # Same deadline; the campaign with more work left has less slack.
    small = camp(1, [stage(1, ready=5)], deadline_h=50)
    big = camp(2, [stage(2, ready=300)], deadline_h=50)
    d = run([small, big])
    assert d.campaigns[2].slack_s < d.campaigns[1].slack_s
    assert d.campaigns[2].rank == 0


def test_priority_breaks_ties_and_passes_only_what_can_wait():
    low = camp(1, [stage(1, ready=40)], deadline_h=30, priority=0)
    high = camp(2, [stage(2, ready=40)], deadline_h=30, priority=2)
    d = run([low, high])
    assert d.campaigns[2].rank == 0
    # A critical campaign goes before a low one with less slack that can wait for all of
    # it (4 hours of work on 10 slots) and still keep the margin ...
    low = camp(1, [stage(1, ready=40)], deadline_h=30, priority=0)
    critical = camp(2, [stage(2, ready=40)], deadline_h=120, priority=3)
    assert run([low, critical]).campaigns[2].rank == 0
    # ... but not before one that cannot: 1 hour of slack, and the critical one needs 4.
    low = camp(1, [stage(1, ready=40)], deadline_h=5, priority=0)
    critical = camp(2, [stage(2, ready=40)], deadline_h=120, priority=3)
    d = run([low, critical])
    assert d.campaigns[1].rank == 0
    assert submitted(d, 1) == 9 and submitted(d, 2) == 1  # the starvation floor only
    # The slack-only yardstick ignores priority altogether.
    low = camp(1, [stage(1, ready=40)], deadline_h=30, priority=0)
    critical = camp(2, [stage(2, ready=40)], deadline_h=120, priority=3)
    assert run([low, critical], policy="slack-only").campaigns[1].rank == 0


def test_experiment_quota_is_never_exceeded():
    a = camp(1, [stage(1, ready=50, in_flight=2)], deadline_h=10, exp=1)
    b = camp(2, [stage(2, ready=50)], deadline_h=20, exp=1)
    other = camp(3, [stage(3, ready=50)], deadline_h=30, exp=2)
    d = run([a, b, other], capacity=100, quotas={1: 6, 2: 100})
    assert submitted(d, 1) + submitted(d, 2) == 4  # 6 minus the 2 in flight
    assert submitted(d, 3) == 50
    waiting = d.stages[b.stages[0].stage_id]
    assert waiting.reason == WaitReason.QUOTA
    assert "experiment quota 6" in waiting.detail


def test_campaign_throttle_is_never_exceeded():
    throttled = camp(1, [stage(1, ready=50, in_flight=1)], deadline_h=10, throttle=3)
    d = run([throttled], capacity=100)
    assert submitted(d, 1) == 2
    assert d.stages[throttled.stages[0].stage_id].reason == WaitReason.THROTTLE


def test_backend_capacity_is_never_exceeded():
    a = camp(1, [stage(1, ready=50, in_flight=4)], deadline_h=10)
    b = camp(2, [stage(2, ready=50, in_flight=3)], deadline_h=90)
    d = run([a, b], capacity=10)
    assert submitted(d, 1) + submitted(d, 2) == 3
    assert submitted(d, 1) == 3
    assert d.stages[b.stages[0].stage_id].reason == WaitReason.CAPACITY


def test_in_flight_of_other_work_counts_against_capacity():
    a = camp(1, [stage(1, ready=50)], deadline_h=10)
    d = run([a], capacity=10, in_flight_backend={"slurm": 8}, in_flight_experiment={1: 8})
    assert submitted(d, 1) == 2


def test_stages_waiting_for_their_inputs():
    gen = stage(1, ready=0, in_flight=5, position=0)
    sim = stage(1, planned=10, position=1)
    d = run([camp(1, [gen, sim], deadline_h=10)])
    assert d.stages[sim.stage_id].submit == 0
    assert d.stages[sim.stage_id].reason == WaitReason.DEPENDENCY
    assert d.stages[gen.stage_id].reason is None


def test_streaming_downstream_first_within_a_campaign():
    gen = stage(1, ready=10, position=0)
    sim = stage(1, ready=3, planned=7, position=1)
    d = run([camp(1, [gen, sim], deadline_h=10)], capacity=5)
    # The released simulation jobs go before new generation jobs.
    assert d.stages[sim.stage_id].submit == 3
    assert d.stages[gen.stage_id].submit == 2


def test_request_with_the_earliest_deadline_first_within_a_campaign():
    late = stage(1, ready=10, request_id=1, deadline=90 * H)
    soon = stage(1, ready=10, request_id=2, deadline=10 * H)
    d = run([camp(1, [late, soon], deadline_h=100)], capacity=4)
    assert d.stages[soon.stage_id].submit == 4
    assert d.stages[late.stage_id].submit == 0


def test_paused_and_planned_campaigns_submit_nothing_and_say_why():
    paused = camp(1, [stage(1, ready=5)], deadline_h=10, state="paused")
    planned = camp(2, [stage(2, ready=5)], deadline_h=10, state="planned")
    d = run([paused, planned])
    assert d.submissions() == []
    assert d.stages[paused.stages[0].stage_id].reason == WaitReason.PAUSED
    assert d.stages[planned.stages[0].stage_id].reason == WaitReason.NOT_LAUNCHED
    assert d.campaigns[1].reason == WaitReason.PAUSED


def test_stages_of_requests_on_hold_wait_and_leave_the_capacity_to_others():
    # An id from the same counter as stage()'s: a literal 1 collided with the first stage()
    # of a test process that ran this test first (pytest-xdist deals tests out in any order).
    held = StageLoad(next(_ids), 1, 0, ready=10, planned=0, in_flight=0, walltime_s=H, on_hold=True)
    free = stage(1, ready=10, request_id=2)
    other = camp(2, [stage(2, ready=10)], deadline_h=90)
    d = run([camp(1, [held, free], deadline_h=10), other], capacity=12)
    assert d.stages[held.stage_id].submit == 0
    assert d.stages[held.stage_id].reason == WaitReason.ON_HOLD
    assert (d.stages[free.stage_id].submit, submitted(d, 2)) == (10, 2)


def test_no_campaign_starves():
    # The urgent campaign alone could use all ten slots for days.
    urgent = camp(1, [stage(1, ready=1000)], deadline_h=200)
    others = [camp(cid, [stage(cid, ready=100)], deadline_h=500 + cid) for cid in range(2, 6)]
    d = run([urgent, *others], capacity=10)
    for c in others:
        assert submitted(d, c.campaign_id) == 1
    assert submitted(d, 1) == 6


def test_the_floor_only_serves_campaigns_with_nothing_running():
    urgent = camp(1, [stage(1, ready=1000, in_flight=8)], deadline_h=200)
    running = camp(2, [stage(2, ready=100, in_flight=1)], deadline_h=900)
    d = run([urgent, running], capacity=10)
    assert (submitted(d, 1), submitted(d, 2)) == (1, 0)


def test_the_floor_respects_limits():
    full = camp(1, [stage(1, ready=10, in_flight=10)], deadline_h=10)
    starving = camp(2, [stage(2, ready=10)], deadline_h=900)
    d = run([full, starving], capacity=10)
    assert submitted(d, 2) == 0
    assert d.stages[starving.stages[0].stage_id].reason == WaitReason.CAPACITY


def test_campaigns_that_cannot_make_it_go_after_those_that_can():
    # 1000 job-hours in 10 hours on 10 slots: hopeless, despite the nearest deadline.
    hopeless = camp(1, [stage(1, ready=1000)], deadline_h=10)
    feasible = camp(2, [stage(2, ready=50)], deadline_h=20)
    d = run([hopeless, feasible], capacity=10)
    assert d.campaigns[1].slack_s < 0
    assert d.campaigns[2].rank == 0
    assert submitted(d, 2) == 9


def test_backends_are_separate():
    slurm = camp(1, [stage(1, ready=50)], deadline_h=10)
    local = camp(2, [stage(2, ready=50)], deadline_h=90, backend="local")
    d = run([slurm, local], capacity=10)
    assert (submitted(d, 1), submitted(d, 2)) == (10, 4)


@pytest.mark.parametrize(
    ("policy", "first"),
    [("fcfs", 1), ("priority", 2), ("slack", 3)],
)
def test_baselines_order_differently(policy, first):
    early = camp(1, [stage(1, ready=100)], deadline_h=500, priority=1, arrival=0)
    important = camp(2, [stage(2, ready=100)], deadline_h=400, priority=3, arrival=5)
    # Too urgent to wait 10 hours for the important one: ours serves it first.
    urgent = camp(3, [stage(3, ready=100)], deadline_h=15, priority=0, arrival=9)
    d = run([early, important, urgent], capacity=10, policy=policy)
    assert d.campaigns[first].rank == 0
    assert submitted(d, first) == 10 if policy != "slack" else 8


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="unknown policy"):
        run([], policy="random")

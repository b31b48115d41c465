"""The "if scheduled now" forecasts of many requests at once equal one projection each.

``project_each`` sets the base campaigns up once and stops each scenario when its
extra campaign is done; ``forecast_unscheduled`` uses it for a whole page of
requests. Both must give exactly what projecting each request alone gives.
"""

import dataclasses
import datetime as dt
from types import SimpleNamespace

import pytest
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns import conf
from campaigns.scheduler import (
    DEFAULT_MARGIN_S,
    INF,
    CampaignLoad,
    Projection,
    SchedulerInput,
    StageLoad,
    _duration,
    campaign_share,
    campaign_work,
    order_key,
    priority_order,
    project,
    project_each,
    request_order,
)
from campaigns.services import campaign_action, schedule_requests
from campaigns.services.feasibility import (
    HYPOTHETICAL,
    _when,
    feasibility,
    forecast_unscheduled,
)
from campaigns.services.planning import load_inputs
from tests.campaigns.factories import CampaignFactory, approved_request, workflow

H = 3600.0
BACKENDS = ("slurm", "htcondor")


@st.composite
def campaign_loads(draw, cid: int, experiments: int = 3) -> CampaignLoad:
    stages = []
    for n in range(draw(st.integers(0, 3))):
        group = draw(st.integers(1, 3))
        stages.append(
            StageLoad(
                stage_id=cid * 10 + n,
                campaign_id=cid,
                position=n,
                ready=draw(st.integers(0, 40)),
                planned=draw(st.integers(0, 40)),
                in_flight=draw(st.integers(0, 5)),
                walltime_s=draw(st.sampled_from([0.5 * H, H, 3 * H])),
                request_id=cid * 10 + group,
                request_deadline=draw(st.integers(1, 200)) * H,
            )
        )
    return CampaignLoad(
        campaign_id=cid,
        experiment_id=draw(st.integers(1, experiments)),
        backend=draw(st.sampled_from(BACKENDS)),
        state=draw(st.sampled_from(["active", "planned", "paused"])),
        priority=draw(st.integers(0, 3)),
        deadline=draw(st.integers(1, 200)) * H,
        stages=tuple(stages),
        throttle=draw(st.none() | st.integers(0, 8)),
        arrival=draw(st.integers(0, 10)) * H,
    )


@st.composite
def worlds(draw):
    n = draw(st.integers(0, 8))
    campaigns = [draw(campaign_loads(cid)) for cid in range(1, n + 1)]
    extras = [
        dataclasses.replace(draw(campaign_loads(100 + k)), campaign_id=HYPOTHETICAL)
        for k in range(draw(st.integers(1, 4)))
    ]
    inp = SchedulerInput(
        now=draw(st.integers(0, 5)) * H,
        capacity={"slurm": draw(st.integers(0, 12)), "htcondor": draw(st.integers(1, 12))},
        quotas={e: draw(st.integers(0, 10)) for e in (1, 2, 3)},
        campaigns=campaigns,
    )
    return inp, extras, draw(st.sampled_from(["slack", "fcfs", "priority"]))


# --- the projection as it was written first: the oracle -------------------------------------
# The scheduler's projection was rewritten for speed (set up once, lists instead of
# dictionaries, early stop); this is the straightforward version it must agree with.


def reference_project(inp, policy="slack", margin_s=DEFAULT_MARGIN_S):
    """``project`` as first written (commit 80ccd4a)."""
    now = inp.now
    state: dict[int, dict] = {}
    order = []
    for c in inp.campaigns:
        work, chain = campaign_work(c)
        share = campaign_share(c, inp.capacity, inp.quotas)
        slack = c.deadline - now - _duration(work, chain, share)
        order.append((order_key(c, slack, policy), c, slack, _duration(work, chain, share)))
        groups: dict[int, list] = {}
        for s in c.stages:
            g = groups.setdefault(s.request_id, [s.request_deadline, 0.0, 0.0])
            if s.remaining:
                g[1] += s.remaining * s.walltime_s
                g[2] += s.walltime_s
        # Groups are worked in the order decide() serves their stages.
        ranks = request_order(c.stages, now, share, policy == "slack")
        queue = sorted(
            ((d, gid, w, ch) for gid, (d, w, ch) in groups.items()),
            key=lambda x: (ranks.get(x[1], 0), x[1]),
        )
        state[c.campaign_id] = {
            "c": c,
            "work": work,
            "chain": chain,
            "share": share,
            "queue": queue,
            "done": 0.0,  # work done so far
            "cum": 0.0,  # work of the groups already finished
            "proj": Projection(c.campaign_id, None, {}, share),
        }
    order.sort(key=lambda item: item[0])
    items = [SimpleNamespace(campaign=c, slack=sl, duration=du) for _k, c, sl, du in order]
    if policy == "slack":
        items = priority_order(items, margin_s)
    ordered = [item.campaign for item in items]

    def close_requests(st, t: float) -> None:
        # Record the groups whose cumulative work is done by time t.
        queue = st["queue"]
        while queue and st["cum"] + queue[0][2] <= st["done"] + 1e-6:
            _d, gid, w, ch = queue.pop(0)
            st["cum"] += w
            st["proj"].requests[gid] = max(t, now + ch)

    live = []
    for c in ordered:
        st = state[c.campaign_id]
        close_requests(st, now)
        if st["work"] <= 0:
            st["proj"].finish = now
        else:
            live.append(c)

    t = now
    while live:
        rates = reference_rates(live, inp, policy)
        # Advance to the next finishing campaign (rates only change then).
        finishes = []
        for c in live:
            st, r = state[c.campaign_id], rates[c.campaign_id]
            if r > 0:
                finishes.append(((st["work"] - st["done"]) / r, c.campaign_id))
        if not finishes:
            break  # nothing can progress: the rest never finishes at these limits
        dt = min(finishes)[0]
        t_next = t + dt
        # Group ends inside this interval: interpolate at the constant rate.
        for c in live:
            st, r = state[c.campaign_id], rates[c.campaign_id]
            if r <= 0:
                continue
            queue = st["queue"]
            while queue and st["cum"] + queue[0][2] <= st["done"] + r * dt + 1e-6:
                _d, gid, w, ch = queue.pop(0)
                st["cum"] += w
                at = t + max(st["cum"] - st["done"], 0.0) / r
                st["proj"].requests[gid] = max(at, now + ch)
            st["done"] += r * dt
        still = []
        for c in live:
            st = state[c.campaign_id]
            if st["done"] >= st["work"] - 1e-6:
                st["proj"].finish = max(t_next, now + st["chain"])
                close_requests(st, t_next)
            else:
                still.append(c)
        live, t = still, t_next
    return {cid: st["proj"] for cid, st in state.items()}


def reference_rates(live, inp, policy):
    """Slots each live campaign holds while the set of live campaigns stays the same."""
    backend_free = dict(inp.capacity)
    exp_free = dict(inp.quotas)
    rates = dict.fromkeys((c.campaign_id for c in live), 0.0)

    def give(c: CampaignLoad, wanted: float) -> None:
        cap = c.throttle if c.throttle is not None else INF
        n = min(
            wanted,
            cap - rates[c.campaign_id],
            exp_free.get(c.experiment_id, 0),
            backend_free.get(c.backend, 0),
        )
        if n > 0:
            rates[c.campaign_id] += n
            exp_free[c.experiment_id] = exp_free.get(c.experiment_id, 0) - n
            backend_free[c.backend] = backend_free.get(c.backend, 0) - n

    if policy == "slack":
        for c in live:
            give(c, 1)
    for c in live:
        give(c, INF)
    return rates


def close(a: float | None, b: float | None) -> bool:
    """The same moment up to the rounding of sums of floats (far below a second)."""
    return a == b or (a is not None and b is not None and abs(a - b) <= 1e-6 * max(1.0, abs(b)))


def same(got: Projection, want: Projection) -> bool:
    """``project`` moves every campaign's line only when its rate changes, where the first
    version stepped every campaign at every event: the same times up to rounding."""
    return (
        close(got.finish, want.finish)
        and got.requests.keys() == want.requests.keys()
        and all(close(got.requests[g], want.requests[g]) for g in want.requests)
        and got.share == want.share
    )


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_the_projection_agrees_with_the_first_version(world):
    inp, extras, policy = world
    inp = dataclasses.replace(inp, campaigns=[*inp.campaigns, extras[0]])
    got, want = project(inp, policy, 12 * H), reference_project(inp, policy, 12 * H)
    assert got.keys() == want.keys()
    assert all(same(got[cid], want[cid]) for cid in want)


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_each_extra_projects_as_if_it_were_alone(world):
    inp, extras, policy = world
    batched = project_each(inp, extras, policy, 12 * H)
    for extra, got in zip(extras, batched, strict=True):
        alone = dataclasses.replace(inp, campaigns=[*inp.campaigns, extra])
        mine = project(alone, policy, 12 * H)[HYPOTHETICAL]
        # Exactly what projecting it alone gives (the same steps up to its finish) ...
        assert (got.finish, got.requests, got.share) == (mine.finish, mine.requests, mine.share)
        # ... and what the first version gave.
        assert same(got, reference_project(alone, policy, 12 * H)[HYPOTHETICAL])


@pytest.mark.django_db
def test_a_page_of_requests_is_forecast_as_each_alone(experiment, operator, settings, monkeypatch):
    """The service: a busy system, several waiting requests, each projected alone."""
    settings.OPOS_BACKEND_CAPACITY = {"local": 4}
    template = workflow(experiment)
    # Less slack than any of the waiting requests: served before them.
    busy = CampaignFactory(
        experiment=experiment, priority="critical", deadline=timezone.localdate() + dt.timedelta(3)
    )
    big = approved_request(experiment, template, events=40_000, per_job=100, days=10)
    schedule_requests(busy, [big.pk], operator)
    campaign_action(busy, "launch", operator)
    waiting = [
        approved_request(experiment, template, events=events, per_job=100, days=days)
        for events, days in [(500, 30), (4000, 3), (20_000, 2), (1000, 30), (9000, 9)]
    ]
    inputs = load_inputs()
    batched = forecast_unscheduled(waiting, inputs)

    for request in waiting:
        alone = forecast_unscheduled([request], inputs)[request.pk]
        assert batched[request.pk] == alone
    # And against the projection run the long way, one scenario per request.
    for request in waiting:
        single = forecast_unscheduled([request], inputs)[request.pk]
        extra = _extra_of(request, inputs, monkeypatch)
        scenario = dataclasses.replace(inputs.input, campaigns=[*inputs.input.campaigns, extra])
        proj = project(scenario, "slack", conf.priority_margin_s())[HYPOTHETICAL]
        assert single.finish == _when(proj.finish)
        assert single.status == feasibility(inputs.input.now, extra.deadline, proj.finish)
    assert len({f.status for f in batched.values()}) > 1  # the cases differ
    assert len({f.finish for f in batched.values()}) == len(waiting)


def _extra_of(request, inputs, monkeypatch) -> CampaignLoad:
    """The hypothetical campaign of ``request``, as forecast_unscheduled builds it."""
    from campaigns.services import feasibility as module

    captured = []
    real = module.project_each

    def spy(inp, extras, *args):
        captured.extend(extras)
        return real(inp, extras, *args)

    with monkeypatch.context() as patch:
        patch.setattr(module, "project_each", spy)
        forecast_unscheduled([request], inputs)
    return captured[0]

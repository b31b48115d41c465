"""The scheduling policy: what may be submitted now, and why the rest waits.

Pure Python over plain data (no ORM, no clock), so it is testable on hand-made
cases, fast enough to run every cycle over hundreds of campaigns, and the very
same code the simulator (``simulate_schedule``) and the forecasts run.
``campaigns.services.planning.plan_cycle`` loads the inputs from the database.

Policy ("slack"):

* Only active campaigns submit. Capacity is counted in jobs in flight, per
  batch backend; every experiment has a quota and every campaign may have a
  throttle, and none of them is ever exceeded. A partition may have a capacity
  of its own, and an experiment a quota on it (``partition_capacity``,
  ``partition_quotas``): the work of a campaign that runs there counts against
  them too.
* Campaigns are served least slack first. Slack = deadline - now - the time
  the remaining work needs at the share the campaign can get (its throttle,
  quota and backend capacity), never less than the chain of remaining stages.
  Priority breaks ties of slack, and a campaign of higher priority is served
  before one of lower priority and less slack only when that one can afford
  to wait for the whole of it and still keep ``margin_s`` (an hour) of its
  slack (``priority_order``): priority never costs a deadline least slack
  first would meet.
* A campaign that cannot meet its deadline even with its whole share
  (negative slack) is served after those that still can: under overload,
  least-slack-first would otherwise pour capacity into work that is late
  anyway and make on-time work late too (the "domino effect").
* No starvation: before the main pass, every active campaign with ready work
  and nothing in flight gets one slot, while capacity allows.
* Within a campaign, the requests of higher priority go first as long as
  every request that would meet its deadline in deadline order still does
  (``request_order``); and downstream stages before upstream ones, so work
  streams through to finished samples instead of piling up half-processed.

The baselines "fcfs" (arrival order) and "priority" (priority, then arrival)
use the same allocation without slack, demotion or the starvation floor;
"slack-only" is ours with priority ignored (the yardstick that priority must
never make miss more deadlines). The simulator compares them with ours.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from .choices import Feasibility, WaitReason
from .partition_room import PartitionRoom
from .projection_room import ProjectionRoom

POLICIES = ("slack", "slack-only", "fcfs", "priority")
DEFAULT_MARGIN_S = 3600.0
MAX_PRIORITY_REQUESTS = 400
INF = math.inf


@dataclass(frozen=True, slots=True)
class StageLoad:
    """One stage's work as the scheduler sees it (counts of jobs, no job rows)."""

    stage_id: int
    campaign_id: int
    position: int
    ready: int  # may be submitted now
    planned: int  # waiting for inputs from the previous stage
    in_flight: int  # queued, running or held at the batch system
    walltime_s: float  # per-job estimate (observed median once known)
    request_id: int = 0  # the request it belongs to
    request_deadline: float = INF  # that request's deadline (epoch seconds)
    request_priority: int = 1  # that request's priority, 0 (low) .. 3 (critical)
    name: str = ""
    input_stage_id: int | None = None
    on_hold: bool = False  # its request is on hold (a blocker is being solved)
    gave_up: int = 0  # jobs that failed for good: not succeeded, no attempt left open

    @property
    def remaining(self) -> int:
        return self.ready + self.planned + self.in_flight

    @property
    def blocked(self) -> bool:
        """Work is left, but none of it will run again without a recovery."""
        return self.gave_up > 0 and self.remaining == 0


@dataclass(frozen=True, slots=True)
class CampaignLoad:
    """One campaign's state, limits and stages."""

    campaign_id: int
    experiment_id: int
    backend: str
    state: str  # planned, active, paused, cancelled
    priority: int  # 0 (low) .. 3 (critical)
    deadline: float  # epoch seconds
    stages: tuple[StageLoad, ...]
    throttle: int | None = None
    arrival: float = 0.0  # when it was created: the FCFS order
    partition: str | None = None  # where its work runs ("slurm:debug"), if named

    @property
    def in_flight(self) -> int:
        return sum(s.in_flight for s in self.stages)


@dataclass(frozen=True, slots=True)
class SchedulerInput:
    """Everything one decision needs. ``in_flight_*`` default to the sums over campaigns;
    give them when other work (a cancelled campaign still draining) holds slots too."""

    now: float
    capacity: Mapping[str, int]
    quotas: Mapping[int, int]
    campaigns: Sequence[CampaignLoad]
    in_flight_backend: Mapping[str, int] | None = None
    in_flight_experiment: Mapping[int, int] | None = None
    # Partitions with limits of their own; a partition not named here has none.
    partition_capacity: Mapping[str, int] = field(default_factory=dict)
    partition_quotas: Mapping[tuple[int, str], int] = field(default_factory=dict)
    in_flight_partition: Mapping[str, int] | None = None
    in_flight_experiment_partition: Mapping[tuple[int, str], int] | None = None


@dataclass(slots=True)
class StageDecision:
    """How many jobs of a stage to submit now; if fewer than it could, why."""

    stage_id: int
    campaign_id: int
    submit: int
    ready: int
    planned: int
    in_flight: int
    reason: str | None = None  # a WaitReason
    detail: str = ""


@dataclass(slots=True)
class CampaignDecision:
    """A campaign's place in the order and what it gets this cycle."""

    campaign_id: int
    rank: int  # 0 = served first
    slack_s: float
    duration_s: float  # remaining work at the campaign's full share
    share: int  # the jobs in flight it may hold at most (throttle, quota, capacity)
    in_flight: int
    submit: int = 0
    remaining_jobs: int = 0
    reason: str | None = None


@dataclass(slots=True)
class Decision:
    """The output of one cycle."""

    stages: dict[int, StageDecision] = field(default_factory=dict)
    campaigns: dict[int, CampaignDecision] = field(default_factory=dict)

    def submissions(self) -> list[tuple[int, int]]:
        """``(stage_id, jobs)`` for every stage that may submit, in service order."""
        return [(s.stage_id, s.submit) for s in self.stages.values() if s.submit > 0]


# --- ordering -----------------------------------------------------------------


def campaign_work(campaign: CampaignLoad) -> tuple[float, float]:
    """Remaining job-seconds, and the chain of remaining stages (a lower bound on time)."""
    work = 0.0
    chains: dict[int, float] = {}
    for stage in campaign.stages:
        remaining = stage.ready + stage.planned + stage.in_flight  # (stage.remaining, inlined)
        if remaining:
            work += remaining * stage.walltime_s
            # The last job of a request still has to pass every remaining stage.
            chains[stage.request_id] = chains.get(stage.request_id, 0.0) + stage.walltime_s
    return work, max(chains.values(), default=0.0)


def campaign_share(
    campaign: CampaignLoad,
    capacity: Mapping[str, int],
    quotas,
    partition_capacity: Mapping[str, int] | None = None,
    partition_quotas: Mapping[tuple[int, str], int] | None = None,
) -> int:
    """Jobs in flight the campaign could hold if it had its limits to itself."""
    share = capacity.get(campaign.backend, 0)
    share = min(share, quotas.get(campaign.experiment_id, share))
    if campaign.partition is not None:
        share = min(share, (partition_capacity or {}).get(campaign.partition, share))
        pair = (campaign.experiment_id, campaign.partition)
        share = min(share, (partition_quotas or {}).get(pair, share))
    if campaign.throttle is not None:
        share = min(share, campaign.throttle)
    return max(share, 0)


def _duration(work: float, chain: float, share: int) -> float:
    if work <= 0:
        return 0.0
    if share <= 0:
        return INF
    return max(work / share, chain)


def order_key(
    campaign: CampaignLoad, slack: float, policy: str, margin_s: float = 0.0
) -> tuple[float, ...]:
    """Sort key of a campaign under ``policy`` (smaller is served first); under "slack"
    ``priority_order`` then lets priority move campaigns forward where that is safe."""
    if policy == "fcfs":
        return (campaign.arrival, campaign.campaign_id)
    if policy == "priority":
        return (-campaign.priority, campaign.arrival, campaign.campaign_id)
    hopeless = 1.0 if slack < 0 else 0.0
    # Between equal slacks, priority (ignored by the "slack-only" yardstick).
    tie = -campaign.priority if policy == "slack" else 0
    return (
        hopeless,
        slack,
        tie,
        campaign.deadline,
        campaign.arrival,
        campaign.campaign_id,
    )


class _Ranked(NamedTuple):
    key: tuple
    campaign: CampaignLoad
    slack: float
    duration: float
    share: int


def priority_order(items: Sequence, margin_s: float) -> list:
    """``items`` (least slack first) with higher priority moved forward where it is safe.

    Each item has ``campaign``, ``slack`` and ``duration`` (its remaining work at its
    full share). A campaign passes one of lower priority only if that one's slack,
    less what earlier passes already took from it, covers the passer's whole
    duration plus ``margin_s``: it could wait until the passer is done and still
    meet its deadline, so the pass costs nobody a deadline. Campaigns already
    hopeless (negative slack) neither pass nor are passed.
    """
    order: list = []
    budget: list[float] = []
    for item in items:
        pos = len(order)
        if item.slack >= 0 and math.isfinite(item.duration):
            need = item.duration + margin_s
            while (
                pos > 0
                and order[pos - 1].slack >= 0
                and order[pos - 1].campaign.priority < item.campaign.priority
                and budget[pos - 1] >= need
            ):
                pos -= 1
            for k in range(pos, len(order)):
                budget[k] -= item.duration
        order.insert(pos, item)
        budget.insert(pos, item.slack)
    return order


def request_order(
    stages: Sequence[StageLoad], now: float, share: int, use_priority: bool = True
) -> dict[int, int]:
    """Rank of each request inside a campaign: ``{request id: rank}``, 0 served first.

    Deadline order (earliest first) meets every deadline any order can on one
    share of slots, so it is the guard: the highest-priority request goes next
    unless that would make a request that meets its deadline in deadline order
    miss it (by the same fluid estimate as the campaign's slack: its work at
    the campaign's share, never less than its chain of stages). When all
    requests share one priority this is plain deadline order.
    """
    by_request: dict[int, list] = {}
    for s in stages:
        g = by_request.setdefault(s.request_id, [s.request_deadline, s.request_priority, 0.0, 0.0])
        remaining = s.ready + s.planned + s.in_flight
        if remaining:
            g[2] += remaining * s.walltime_s
            g[3] += s.walltime_s
    edf = sorted(by_request, key=lambda rid: (by_request[rid][0], -by_request[rid][1], rid))
    mixed = len({g[1] for g in by_request.values()}) > 1
    # The check costs the square of the number of requests: beyond a few hundred, deadline
    # order with priority between equal deadlines.
    if not use_priority or not mixed or share <= 0 or len(by_request) > MAX_PRIORITY_REQUESTS:
        return {rid: rank for rank, rid in enumerate(edf)}

    span = {rid: g[0] - now for rid, g in by_request.items()}  # time left to each deadline
    work = {rid: g[2] / share for rid, g in by_request.items()}  # time it takes at the share
    key = {rid: (-g[1], span[rid]) for rid, g in by_request.items()}  # who goes first if safe
    # Protected: on time in deadline order (its chain fits, its share of the work too).
    protected, done = set(), 0.0
    for rid in edf:
        done += work[rid]
        if max(done, by_request[rid][3]) <= span[rid]:
            protected.add(rid)
    placed: list[int] = []
    left = list(edf)  # always in deadline order
    elapsed = 0.0
    while left:
        # Serving ``rid`` next delays only the requests before it in deadline order, by its
        # own work; those after it finish when they would have anyway. So it may go next
        # if that delay fits in the room every protected request before it still has.
        room, best = INF, left[0]
        prefix = elapsed
        for rid in left:
            if work[rid] <= room and key[rid] < key[best]:
                best = rid
            prefix += work[rid]
            if rid in protected:
                room = min(room, span[rid] - prefix)
        placed.append(best)
        left.remove(best)
        elapsed += work[best]
    return {rid: rank for rank, rid in enumerate(placed)}


def _stage_order(stage: StageLoad, ranks: Mapping[int, int]) -> tuple:
    return (ranks.get(stage.request_id, 0), stage.request_id, -stage.position, stage.stage_id)


# --- the decision ---------------------------------------------------------------


def decide(
    inp: SchedulerInput, policy: str = "slack", margin_s: float = DEFAULT_MARGIN_S
) -> Decision:
    """Decide how many ready jobs of each stage to submit now, and why others wait."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}: choose one of {', '.join(POLICIES)}")
    decision = Decision()
    backend_used: dict[str, int] = dict(inp.in_flight_backend or {})
    exp_used: dict[int, int] = dict(inp.in_flight_experiment or {})
    if inp.in_flight_backend is None or inp.in_flight_experiment is None:
        for c in inp.campaigns:
            flying = c.in_flight
            if inp.in_flight_backend is None:
                backend_used[c.backend] = backend_used.get(c.backend, 0) + flying
            if inp.in_flight_experiment is None:
                exp_used[c.experiment_id] = exp_used.get(c.experiment_id, 0) + flying
    backend_free = {b: cap - backend_used.get(b, 0) for b, cap in inp.capacity.items()}
    exp_free = {e: q - exp_used.get(e, 0) for e, q in inp.quotas.items()}
    part_free = PartitionRoom(inp)

    ranked = []
    for c in inp.campaigns:
        work, chain = campaign_work(c)
        share = campaign_share(
            c, inp.capacity, inp.quotas, inp.partition_capacity, inp.partition_quotas
        )
        duration = _duration(work, chain, share)
        slack = c.deadline - inp.now - duration
        ranked.append(_Ranked(order_key(c, slack, policy), c, slack, duration, share))
    ranked.sort(key=lambda item: item.key)
    if policy == "slack":
        ranked = priority_order(ranked, margin_s)

    camp_free: dict[int, float] = {}
    stage_rows: dict[int, list[StageDecision]] = {}
    on_hold = {s.stage_id for c in inp.campaigns for s in c.stages if s.on_hold}
    for rank, (_key, c, slack, duration, share) in enumerate(ranked):
        flying = c.in_flight
        decision.campaigns[c.campaign_id] = CampaignDecision(
            campaign_id=c.campaign_id,
            rank=rank,
            slack_s=slack,
            duration_s=duration,
            share=share,
            in_flight=flying,
            remaining_jobs=sum(s.remaining for s in c.stages),
        )
        camp_free[c.campaign_id] = INF if c.throttle is None else c.throttle - flying
        rows = []
        ranks = request_order(c.stages, inp.now, share, policy == "slack")
        for s in sorted(c.stages, key=lambda s, ranks=ranks: _stage_order(s, ranks)):
            row = StageDecision(s.stage_id, c.campaign_id, 0, s.ready, s.planned, s.in_flight)
            decision.stages[s.stage_id] = row
            rows.append(row)
        stage_rows[c.campaign_id] = rows

    def grant(c: CampaignLoad, row: StageDecision, wanted: int) -> int:
        n = min(
            wanted,
            row.ready - row.submit,
            camp_free[c.campaign_id],
            exp_free.get(c.experiment_id, 0),
            backend_free.get(c.backend, 0),
            part_free.free(c),
        )
        n = int(max(n, 0))
        if n:
            part_free.take(c, n)
            row.submit += n
            camp_free[c.campaign_id] -= n
            exp_free[c.experiment_id] = exp_free.get(c.experiment_id, 0) - n
            backend_free[c.backend] = backend_free.get(c.backend, 0) - n
        return n

    active = [item[1] for item in ranked if item[1].state == "active"]
    if policy == "slack":
        # The starvation floor: one slot for each campaign that has nothing running.
        for c in active:
            if c.in_flight == 0:
                for row in stage_rows[c.campaign_id]:
                    if row.ready and row.stage_id not in on_hold and grant(c, row, 1):
                        break
    for c in active:
        for row in stage_rows[c.campaign_id]:
            if row.ready > row.submit and row.stage_id not in on_hold:
                grant(c, row, row.ready - row.submit)

    for _key, c, *_ in ranked:
        summary = decision.campaigns[c.campaign_id]
        for row in stage_rows[c.campaign_id]:
            summary.submit += row.submit
            _explain(row, c, inp, camp_free, exp_free, part_free, row.stage_id in on_hold)
        reasons = {row.reason for row in stage_rows[c.campaign_id] if row.reason}
        summary.reason = next((r for r in WaitReason.values if r in reasons), None)
    return decision


def _explain(row, c, inp, camp_free, exp_free, part_free, held: bool) -> None:
    """Fill in why a stage submits fewer jobs than it has waiting."""
    waiting = row.ready - row.submit
    if held and c.state == "active" and waiting + row.planned > 0:
        row.reason = WaitReason.ON_HOLD
        row.detail = f"{waiting + row.planned} jobs wait: the request is on hold"
        return
    if c.state != "active":
        if waiting + row.planned > 0:
            row.reason = {
                "planned": WaitReason.NOT_LAUNCHED,
                "paused": WaitReason.PAUSED,
                "cancelled": WaitReason.CANCELLED,
            }.get(c.state, WaitReason.PAUSED)
            row.detail = f"{waiting + row.planned} jobs wait: campaign is {c.state}"
        return
    if waiting > 0:
        if camp_free[c.campaign_id] <= 0:
            row.reason = WaitReason.THROTTLE
            row.detail = f"{waiting} ready jobs wait: campaign throttle {c.throttle} reached"
        elif exp_free.get(c.experiment_id, 0) <= 0:
            row.reason = WaitReason.QUOTA
            quota = inp.quotas.get(c.experiment_id, 0)
            row.detail = f"{waiting} ready jobs wait: experiment quota {quota} reached"
        elif part_free.free(c) <= 0:
            row.reason = WaitReason.PARTITION
            row.detail = f"{waiting} ready jobs wait: {part_free.full(c)}"
        else:
            row.reason = WaitReason.CAPACITY
            cap = inp.capacity.get(c.backend, 0)
            row.detail = (
                f"{waiting} ready jobs wait: {c.backend} capacity {cap} in use by more urgent work"
            )
    elif row.planned > 0 and row.ready == 0:
        row.reason = WaitReason.DEPENDENCY
        row.detail = f"{row.planned} jobs wait for their inputs from the previous stage"


# --- feasibility --------------------------------------------------------------


@dataclass(slots=True)
class Projection:
    """Projected finish of a campaign and of each of its requests (by request id)."""

    campaign_id: int
    finish: float | None  # None: never, at the current limits (no capacity or quota)
    requests: dict[int, float | None] = field(default_factory=dict)
    share: int = 0


def project(inp: SchedulerInput, policy: str = "slack", margin_s: float = DEFAULT_MARGIN_S):
    """Project when every campaign (and each request in it) finishes, by a fluid model.

    Campaigns are served in the policy's order with rates (slots) handed out
    the way ``decide`` does (floor of one slot, then greedy, within quotas,
    throttles and capacity); when a campaign finishes its slots pass on. Jobs
    already in flight are counted as work still to do, which errs on the late
    side. Every campaign given is projected as if active: for a planned or
    paused one this answers "if it ran from now".

    Returns ``{campaign_id: Projection}``.
    """
    setups = [_setup(c, inp, policy) for c in inp.campaigns]
    ordered = sorted(setups, key=lambda item: item.key)
    if policy == "slack":
        ordered = priority_order(ordered, margin_s)
    lines = {item.campaign.campaign_id: item.start() for item in setups}
    _simulate(ordered, lines, inp, policy)
    return {cid: line.projection for cid, line in lines.items()}


def project_each(
    inp: SchedulerInput,
    extras: Sequence[CampaignLoad],
    policy: str = "slack",
    margin_s: float = DEFAULT_MARGIN_S,
) -> list[Projection]:
    """The projection of each of ``extras`` added alone to ``inp``'s campaigns.

    The same answer, extra by extra, as ``project`` of ``inp`` plus that one
    campaign (the forecast of work "if scheduled now", one scenario per
    request), but the base campaigns' work, shares and order are worked out
    once, and each scenario stops as soon as its extra campaign is done: what
    happens to the others after that cannot change its finish. Extras need a
    campaign id none of ``inp``'s campaigns has.
    """
    base = sorted((_setup(c, inp, policy) for c in inp.campaigns), key=lambda i: i.key)
    keys = [item.key for item in base]
    out = []
    for extra in extras:
        scenario = replace(inp, campaigns=[*inp.campaigns, extra])  # every limit kept
        mine = _setup(extra, scenario, policy)
        at = bisect.bisect_right(keys, mine.key)
        ordered = [*base[:at], mine, *base[at:]]
        if policy == "slack":
            ordered = priority_order(ordered, margin_s)
        lines = {item.campaign.campaign_id: item.start() for item in ordered}
        _simulate(ordered, lines, scenario, policy, until=extra.campaign_id)
        out.append(lines[extra.campaign_id].projection)
    return out


@dataclass(slots=True)
class _Setup:
    """What the projection works out once per campaign: its work, share and order."""

    campaign: CampaignLoad
    key: tuple
    work: float
    chain: float
    share: int
    queue: list[tuple]
    slack: float = 0.0
    duration: float = 0.0

    def start(self) -> _Line:
        return _Line(
            self.campaign,
            self.work,
            self.chain,
            list(self.queue),
            Projection(self.campaign.campaign_id, None, {}, self.share),
        )


@dataclass(slots=True)
class _Line:
    """One campaign in the fluid model: its progress is a straight line of work done
    against time, from where its rate last changed (``since``, ``done_then``) at ``rate``
    slots; ``version`` tells a finish foreseen at a rate since changed."""

    campaign: CampaignLoad
    work: float  # job-seconds to do in all
    chain: float  # its longest chain of remaining stages: it never finishes sooner
    queue: list[tuple]  # requests still to finish, in service order: (deadline, id, work, chain)
    projection: Projection
    done: float = 0.0  # work done when the campaign finished (0 until then)
    delivered: float = 0.0  # work of the requests already finished
    since: float = 0.0
    done_then: float = 0.0
    rate: float = 0.0
    version: int = 0


def _setup(c: CampaignLoad, inp: SchedulerInput, policy: str) -> _Setup:
    work, chain = campaign_work(c)
    share = campaign_share(
        c, inp.capacity, inp.quotas, inp.partition_capacity, inp.partition_quotas
    )
    duration = _duration(work, chain, share)
    slack = c.deadline - inp.now - duration
    by_request: dict[int, list] = {}
    for s in c.stages:
        g = by_request.setdefault(s.request_id, [s.request_deadline, 0.0, 0.0])
        remaining = s.ready + s.planned + s.in_flight
        if remaining:
            g[1] += remaining * s.walltime_s
            g[2] += s.walltime_s
    # Requests are worked in the order decide() serves their stages.
    ranks = request_order(c.stages, inp.now, share, policy == "slack")
    queue = sorted(
        ((d, rid, w, ch) for rid, (d, w, ch) in by_request.items()),
        key=lambda x: (ranks.get(x[1], 0), x[1]),
    )
    key = order_key(c, slack, policy)
    return _Setup(c, key, work, chain, share, queue, slack, duration)


def _close_requests(line: _Line, t: float, now: float) -> None:
    # Record the requests whose cumulative work is done by time t.
    queue = line.queue
    while queue and line.delivered + queue[0][2] <= line.done + 1e-6:
        _d, rid, w, ch = queue.pop(0)
        line.delivered += w
        line.projection.requests[rid] = max(t, now + ch)


def _simulate(
    ordered: list[_Setup],
    lines: dict[int, _Line],
    inp: SchedulerInput,
    policy: str,
    until: int | None = None,
) -> None:
    """Run the fluid model over ``lines`` (campaigns in service order); with ``until``,
    stop once that campaign is done.

    Event by event (a campaign finishing is the only thing that changes rates), but
    lazily: a campaign's progress is a straight line from where its rate last changed,
    and only campaigns whose rate changes are touched. Under the slack policy every
    campaign holds its floor slot and a few hold more, so a step costs what those few
    cost, not the hundreds still running (the forecasts of a page run this once per
    request). The times are the same as stepping every campaign at every event, up to
    the rounding of the floating-point sums.
    """
    now = inp.now
    alive: dict[int, CampaignLoad] = {}  # in service order; removing one is cheap
    for item in ordered:
        line = lines[item.campaign.campaign_id]
        _close_requests(line, now, now)
        if line.work <= 0:
            line.projection.finish = now
        else:
            line.since, line.done_then, line.rate, line.version = now, 0.0, 0.0, 0
            alive[item.campaign.campaign_id] = item.campaign
    target = lines[until].projection if until is not None else None
    room = ProjectionRoom(inp, list(alive.values()), floor=policy == "slack")
    heap: list[tuple[float, int, int]] = []  # (finish at the current rate, version, campaign)
    special: set[int] = set()  # campaigns whose rate is not the floor's 1.0
    first = True
    t = now
    while alive:
        if target is not None and target.finish is not None:
            return
        camps = list(alive.values())
        rates, extras = room.rates_or_extras(camps)
        if rates is not None or first:
            rates = rates if rates is not None else room.rates(camps)
            changes = zip((c.campaign_id for c in camps), rates, strict=True)
        else:
            changes = ((cid, extras.get(cid, 1.0)) for cid in special | extras.keys())
        new_special = set()
        for cid, r in changes:
            line = lines[cid]
            if r != 1.0:
                new_special.add(cid)
            if r != line.rate:
                _advance(line, t, now)
                line.rate, line.version = r, line.version + 1
                if r > 0:
                    finish = line.since + (line.work - line.done_then) / r
                    heapq.heappush(heap, (finish, line.version, cid))
        special, first = new_special, False
        # Advance to the next finishing campaign (rates only change then).
        while heap and heap[0][1] != lines[heap[0][2]].version:
            heapq.heappop(heap)  # a finish foreseen at a rate since changed
        if not heap:
            break  # nothing can progress: the rest never finishes at these limits
        t_next = heap[0][0]
        ended = [lines[heapq.heappop(heap)[2]]]  # the first to finish, whatever the rounding
        while heap and heap[0][0] <= t_next + 1e-6:
            # Others finishing within a hair's breadth (in work) finish with it, as when
            # every campaign was stepped; times are epoch seconds, so compare in time.
            finish, version, cid = heap[0]
            line = lines[cid]
            if version == line.version and (finish - t_next) * line.rate > 1e-6:
                break
            heapq.heappop(heap)
            if version == line.version:
                ended.append(line)
        for line in ended:
            _advance(line, t_next, now)
            line.done = line.done_then = line.work  # done, whatever the rounding of the line
            line.projection.finish = max(t_next, now + line.chain)
            _close_requests(line, t_next, now)
            line.version += 1
            room.leave(line.campaign)
            del alive[line.campaign.campaign_id]
            special.discard(line.campaign.campaign_id)
        t = t_next


def _advance(line: _Line, t: float, now: float) -> None:
    """Move a campaign's line to ``t`` at its current rate, recording the requests it
    finished on the way (interpolated at that constant rate)."""
    r = line.rate
    if r <= 0 or t <= line.since:
        line.since = max(line.since, t)
        return
    done = line.done_then + r * (t - line.since)
    queue = line.queue
    while queue and line.delivered + queue[0][2] <= done + 1e-6:
        _d, rid, w, ch = queue.pop(0)
        line.delivered += w
        at = line.since + max(line.delivered - line.done_then, 0.0) / r
        line.projection.requests[rid] = max(at, now + ch)
    line.done_then, line.since = done, t


def feasibility(now: float, deadline: float, finish: float | None, done: bool = False) -> str:
    """Label a projected finish against the deadline.

    At risk: the projection lands in the last 10% of the time that remained
    to the deadline; late: after it, or never at the current limits.
    """
    if done:
        return Feasibility.DONE
    if finish is None or finish > deadline:
        return Feasibility.LATE
    remaining = deadline - now
    if remaining <= 0 or deadline - finish < 0.1 * remaining:
        return Feasibility.AT_RISK
    return Feasibility.ON_TRACK

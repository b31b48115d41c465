"""Run the real scheduling policy against simulated time (``manage.py simulate_schedule``).

A scenario (YAML) gives the batch capacity, experiment quotas and the
campaigns of a production round: when each arrives, its deadline, priority,
throttle and stages (jobs, walltime estimate, actual walltime). Every tick
the simulator builds the same ``SchedulerInput`` that ``plan_cycle`` loads
from the database, calls ``campaigns.scheduler.decide`` and starts what it
says; jobs finish after their actual walltime and release the jobs of the
next stage that read their output (streaming). Walltime estimates start from
the scenario's and become the observed value once a stage's first job ends,
as ``release_dependents`` does with the median.

The same scenario runs under our policy and the baselines, so the numbers
compare policies, not luck: the simulation is deterministic.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from common import limits
from requests_app.choices import PRIORITY_WEIGHT, Priority

from .scheduler import DEFAULT_MARGIN_S, POLICIES, CampaignLoad, SchedulerInput, StageLoad, decide

DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)\s*d)?\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$"
)
MAX_HORIZON_S = 365 * 86400


class ScenarioError(ValueError):
    """A scenario file that cannot be simulated; the messages name each field."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class SimStage:
    name: str
    jobs: int
    walltime_s: float  # the estimate the scheduler starts from
    actual_s: float  # what jobs really take
    files_per_job: int = 1  # outputs of the previous stage read per job


@dataclass
class SimCampaign:
    name: str
    experiment: str
    backend: str
    priority: str
    arrival_s: float
    deadline_s: float
    stages: list[SimStage]
    throttle: int | None = None


@dataclass
class Scenario:
    name: str
    tick_s: float
    capacity: dict[str, int]
    quotas: dict[str, int]
    campaigns: list[SimCampaign]
    description: str = ""
    start: dt.datetime | None = None


@dataclass
class Outcome:
    """How one campaign fared under one policy."""

    name: str
    deadline_s: float
    finish_s: float | None

    @property
    def met(self) -> bool:
        return self.finish_s is not None and self.finish_s <= self.deadline_s

    @property
    def lateness_s(self) -> float:
        if self.finish_s is None:
            return math.inf
        return max(self.finish_s - self.deadline_s, 0.0)


@dataclass
class SimResult:
    """The outcome of a scenario under one policy."""

    policy: str
    outcomes: list[Outcome] = field(default_factory=list)
    cycles: int = 0

    @property
    def met(self) -> int:
        return sum(o.met for o in self.outcomes)

    @property
    def total_lateness_s(self) -> float:
        return sum(o.lateness_s for o in self.outcomes)

    @property
    def makespan_s(self) -> float | None:
        finishes = [o.finish_s for o in self.outcomes]
        return None if any(f is None for f in finishes) else max(finishes, default=0.0)


def parse_duration(value, path: str, problems: list[str]) -> float:
    """Seconds from ``3600``, ``"90m"``, ``"2h"``, ``"1d12h"``."""
    # An integer too large for a float, or .inf, is no duration (and would overflow).
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and 0 <= value <= limits.INT64_MAX and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        match = DURATION.match(value)
        if match and value.strip() and any(match.groups()):
            d, h, m, s = (float(g) if g else 0.0 for g in match.groups())
            seconds = d * 86400 + h * 3600 + m * 60 + s
            if math.isfinite(seconds):
                return seconds
    problems.append(f"{path}: a duration like 3600, 90m, 2h or 1d12h is required")
    return 0.0


def _positive(value, path: str, problems: list[str], default=None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        problems.append(f"{path}: a whole number above 0 is required")
        return default or 1
    return value


def load_scenario(source: str | Path) -> Scenario:
    """Read and validate a scenario file (or YAML text)."""
    text = Path(source).read_text() if isinstance(source, Path) else source
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError([f"not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise ScenarioError(["the scenario must be a mapping"])
    problems: list[str] = []
    capacity = data.get("capacity")
    if not isinstance(capacity, dict) or not capacity:
        problems.append("capacity: a mapping of backend to jobs in flight is required")
        capacity = {}
    capacity = {str(b): _positive(n, f"capacity.{b}", problems) for b, n in capacity.items()}
    quotas = data.get("quotas") or {}
    if not isinstance(quotas, dict):
        problems.append("quotas: a mapping of experiment to jobs in flight")
        quotas = {}
    quotas = {str(e): _positive(n, f"quotas.{e}", problems) for e, n in quotas.items()}
    tick = parse_duration(data.get("tick", "10m"), "tick", problems)
    if tick <= 0 and "tick" not in " ".join(problems):
        problems.append("tick: must be above zero")
    start = data.get("start")
    if start is not None and not isinstance(start, dt.datetime | dt.date):
        problems.append("start: a date or date-time")
        start = None
    if isinstance(start, dt.date) and not isinstance(start, dt.datetime):
        start = dt.datetime.combine(start, dt.time.min)
    raw = data.get("campaigns")
    if not isinstance(raw, list) or not raw:
        problems.append("campaigns: a list of at least one campaign is required")
        raw = []
    campaigns = [
        _campaign(item, f"campaigns[{i}]", capacity, problems) for i, item in enumerate(raw)
    ]
    names = [c.name for c in campaigns if c]
    if len(names) != len(set(names)):
        problems.append("campaigns: names must be unique")
    if problems:
        raise ScenarioError(problems)
    return Scenario(
        name=str(data.get("name") or "scenario"),
        description=str(data.get("description") or ""),
        tick_s=tick,
        capacity=capacity,
        quotas=quotas,
        campaigns=campaigns,
        start=start,
    )


def _campaign(item, path: str, capacity: dict, problems: list[str]) -> SimCampaign | None:
    if not isinstance(item, dict):
        problems.append(f"{path}: each campaign must be a mapping")
        return None
    name = item.get("name")
    if not isinstance(name, str) or not name:
        problems.append(f"{path}.name: required")
        name = path
    backend = item.get("backend") or next(iter(capacity), "local")
    if capacity and backend not in capacity:
        problems.append(
            f"{path}.backend: {backend!r} has no capacity (known: {', '.join(capacity)})"
        )
    priority = item.get("priority", Priority.NORMAL.value)
    if priority not in Priority.values:
        problems.append(f"{path}.priority: choose one of {', '.join(Priority.values)}")
    throttle = item.get("throttle")
    if throttle is not None:
        throttle = _positive(throttle, f"{path}.throttle", problems)
    arrival = parse_duration(item.get("arrival", 0), f"{path}.arrival", problems)
    deadline = parse_duration(item.get("deadline"), f"{path}.deadline", problems)
    if deadline and deadline <= arrival:
        problems.append(f"{path}.deadline: must come after the arrival")
    if deadline > limits.deadline_horizon_days() * 86400:
        problems.append(
            f"{path}.deadline: at most {limits.deadline_horizon_days()} days "
            "(OPOS_DEADLINE_HORIZON_DAYS)"
        )
    stages = []
    raw = item.get("stages")
    if not isinstance(raw, list) or not raw:
        problems.append(f"{path}.stages: a list of at least one stage is required")
        raw = []
    previous_jobs = None
    for k, st in enumerate(raw):
        where = f"{path}.stages[{k}]"
        if not isinstance(st, dict):
            problems.append(f"{where}: each stage must be a mapping")
            continue
        estimate = parse_duration(st.get("walltime"), f"{where}.walltime", problems)
        actual = parse_duration(st.get("actual", st.get("walltime")), f"{where}.actual", problems)
        per_job = _positive(st.get("files_per_job"), f"{where}.files_per_job", problems, 1)
        if previous_jobs is None:
            jobs = _positive(st.get("jobs"), f"{where}.jobs", problems)
        else:
            if "jobs" in st:
                problems.append(f"{where}.jobs: only the first stage gives jobs; use files_per_job")
            jobs = math.ceil(previous_jobs / per_job)
        previous_jobs = jobs
        stages.append(SimStage(str(st.get("name") or f"stage{k}"), jobs, estimate, actual, per_job))
    return SimCampaign(
        name=name,
        experiment=str(item.get("experiment") or "default"),
        backend=backend,
        priority=priority,
        arrival_s=arrival,
        deadline_s=deadline,
        stages=stages,
        throttle=throttle,
    )


def simulate(
    scenario: Scenario, policy: str = "slack", margin_s: float = DEFAULT_MARGIN_S
) -> SimResult:
    """Run ``scenario`` under ``policy``; every campaign's finish against its deadline."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}")
    camps = scenario.campaigns
    n_stages = [len(c.stages) for c in camps]
    ready = [[0] * n for n in n_stages]
    released = [[0] * n for n in n_stages]
    flying = [[0] * n for n in n_stages]
    done = [[0] * n for n in n_stages]
    observed = [[False] * n for n in n_stages]
    finish: list[float | None] = [None] * len(camps)
    exp_ids = {name: i for i, name in enumerate(sorted({c.experiment for c in camps}))}
    big = sum(scenario.capacity.values()) or 1
    quotas = {exp_ids[e]: scenario.quotas.get(e, big) for e in exp_ids}
    arrivals = sorted((c.arrival_s, i) for i, c in enumerate(camps))
    arrived: list[int] = []
    running: list[tuple[float, int, int, int, int]] = []  # (finish, seq, campaign, stage, jobs)
    seq = 0
    horizon = min(max(c.deadline_s for c in camps) * 4, MAX_HORIZON_S)
    result = SimResult(policy)
    t = 0.0
    while t <= horizon:
        while arrivals and arrivals[0][0] <= t:
            _a, i = arrivals.pop(0)
            arrived.append(i)
            released[i][0] = ready[i][0] = camps[i].stages[0].jobs
        while running and running[0][0] <= t:
            end, _s, i, k, n = heapq.heappop(running)
            flying[i][k] -= n
            done[i][k] += n
            observed[i][k] = True
            stages = camps[i].stages
            if k + 1 < len(stages):
                nxt = stages[k + 1]
                whole = done[i][k] == stages[k].jobs
                target = nxt.jobs if whole else done[i][k] // nxt.files_per_job
                new = target - released[i][k + 1]
                if new > 0:
                    released[i][k + 1] += new
                    ready[i][k + 1] += new
            if all(done[i][j] == s.jobs for j, s in enumerate(stages)):
                finish[i] = end
        live = [i for i in arrived if finish[i] is None]
        if not live and not arrivals:
            break
        loads = []
        for i in live:
            c = camps[i]
            loads.append(
                CampaignLoad(
                    campaign_id=i,
                    experiment_id=exp_ids[c.experiment],
                    backend=c.backend,
                    state="active",
                    priority=PRIORITY_WEIGHT[c.priority],
                    deadline=c.deadline_s,
                    throttle=c.throttle,
                    arrival=c.arrival_s,
                    stages=tuple(
                        StageLoad(
                            stage_id=i * 1000 + k,
                            campaign_id=i,
                            position=k,
                            ready=ready[i][k],
                            planned=s.jobs - released[i][k],
                            in_flight=flying[i][k],
                            walltime_s=s.actual_s if observed[i][k] else s.walltime_s,
                        )
                        for k, s in enumerate(c.stages)
                    ),
                )
            )
        decision = decide(
            SchedulerInput(now=t, capacity=scenario.capacity, quotas=quotas, campaigns=loads),
            policy,
            margin_s,
        )
        result.cycles += 1
        submitted = False
        for stage_id, n in decision.submissions():
            i, k = divmod(stage_id, 1000)
            ready[i][k] -= n
            flying[i][k] += n
            seq += 1
            heapq.heappush(running, (t + camps[i].stages[k].actual_s, seq, i, k, n))
            submitted = True
        # Nothing started: jump to the next tick at which something can change.
        nxt = t + scenario.tick_s
        if not submitted:
            upcoming = [e[0] for e in running[:1]] + [a for a, _ in arrivals[:1]]
            if upcoming:
                ticks = math.ceil((min(upcoming) - t) / scenario.tick_s)
                nxt = t + max(ticks, 1) * scenario.tick_s
        t = nxt
    result.outcomes = [Outcome(c.name, c.deadline_s, finish[i]) for i, c in enumerate(camps)]
    return result


def compare(scenario: Scenario, margin_s: float = DEFAULT_MARGIN_S) -> list[SimResult]:
    """The scenario under our policy and both baselines, in that order."""
    return [simulate(scenario, policy, margin_s) for policy in POLICIES]

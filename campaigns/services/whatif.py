"""What-if admission: what a decision does to everyone else, before it is taken.

The scheduler's projection (``scheduler.project``, the simulator's fluid model of the
same policy) is run forward twice on the live state (``planning.load_inputs``: the
database's open campaigns, their jobs ready, planned and in flight, the observed median
walltimes, capacity and quotas): once as things are, once with the change. Every
campaign and request whose projected finish or status moves is listed, with both.

"As things are" counts only the campaigns that run (active); a planned or paused one
runs nothing until it is launched or resumed, so it is left out of both runs unless the
change is about it. Changes:

* ``launch``: the campaign runs from now;
* ``priority``: the campaign with another priority (0 low .. 3 critical);
* ``schedule``: requests added to the campaign (their samples expanded as the
  expansion would, none written);
* ``approve`` (``campaign`` None): a request as a campaign of its own on its
  experiment's default backend, as the approval forecast assumes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from experiments.models import StageTemplate
from requests_app.choices import PRIORITY_WEIGHT
from requests_app.models import ProductionRequest, Sample

from .. import conf
from ..choices import CampaignState
from ..models import deadline_moment
from ..scheduler import CampaignLoad, SchedulerInput, StageLoad, feasibility, project
from .expansion import stage_job_counts
from .planning import CycleInputs, load_inputs

CHANGES = ("launch", "priority", "schedule", "approve")
HYPOTHETICAL = -1


class WhatIfError(ValueError):
    """A change that cannot be projected: the message says what is wrong."""


@dataclass
class Effect:
    """One campaign (``request_id`` None) or request whose projection moves."""

    campaign_id: int
    request_id: int | None
    before_status: str
    after_status: str
    before_finish: dt.datetime | None
    after_finish: dt.datetime | None

    @property
    def delta_s(self) -> float | None:
        """How much later it finishes with the change (negative: earlier)."""
        if self.before_finish is None or self.after_finish is None:
            return None
        return (self.after_finish - self.before_finish).total_seconds()

    @property
    def status_changed(self) -> bool:
        return self.before_status != self.after_status


@dataclass
class WhatIf:
    change: str
    campaign_id: int | None
    effects: list[Effect] = field(default_factory=list)
    subject: Effect | None = None  # the work the decision is about, with the change
    now: dt.datetime | None = None


def _when(ts: float | None) -> dt.datetime | None:
    if ts is None or ts > 32503680000:  # past year 3000: never, for a page
        return None
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC)


def request_loads(
    requests: list[ProductionRequest], campaign_id: int, start_id: int = -1
) -> list[StageLoad]:
    """Stage loads of requests not planned yet, as their expansion would make them (two
    queries): every job of a first stage ready, the others waiting for their inputs."""
    samples = list(Sample.objects.filter(request__in=requests))
    templates = {s.template_id for s in samples}
    stages_of: dict[int, list[StageTemplate]] = {}
    for st in StageTemplate.objects.filter(template__in=templates).order_by("position"):
        stages_of.setdefault(st.template_id, []).append(st)
    deadline_of = {r.pk: deadline_moment(r.deadline).timestamp() for r in requests}
    loads: list[StageLoad] = []
    next_id = start_id
    for sample in samples:
        stages = stages_of.get(sample.template_id, [])
        counts = stage_job_counts(sample, stages)
        previous = None
        for i, st in enumerate(stages):
            load = StageLoad(
                stage_id=next_id,
                campaign_id=campaign_id,
                position=st.position,
                ready=counts[st.id] if i == 0 else 0,
                planned=0 if i == 0 else counts[st.id],
                in_flight=0,
                walltime_s=float(st.walltime_s),
                request_id=sample.request_id,
                request_deadline=deadline_of[sample.request_id],
                input_stage_id=previous,
            )
            loads.append(load)
            previous = next_id
            next_id -= 1
    return loads


def _running(inp: SchedulerInput, keep: int | None) -> list[CampaignLoad]:
    """The campaigns that run now (plus ``keep``, the one the change is about)."""
    return [c for c in inp.campaigns if c.state == CampaignState.ACTIVE or c.campaign_id == keep]


def apply(
    inp: SchedulerInput,
    change: str,
    campaign_id: int | None,
    *,
    priority: int | None = None,
    extra_stages: Iterable[StageLoad] = (),
    extra_campaign: CampaignLoad | None = None,
) -> tuple[SchedulerInput, SchedulerInput]:
    """The scheduler's input before and after the change (pure)."""
    if change not in CHANGES:
        raise WhatIfError(f"change: one of {', '.join(CHANGES)}, not {change!r}")
    ids = {c.campaign_id for c in inp.campaigns}
    if change != "approve" and campaign_id not in ids:
        raise WhatIfError(f"campaign {campaign_id} is not open: nothing to project")
    # Before: what runs now (the campaign itself too, unless launching is the change).
    keep_before = None if change == "launch" else campaign_id
    before = dataclasses.replace(inp, campaigns=_running(inp, keep_before))
    after_campaigns = []
    for c in _running(inp, campaign_id):
        if c.campaign_id == campaign_id:
            if change == "launch":
                c = dataclasses.replace(c, state=CampaignState.ACTIVE)
            elif change == "priority":
                if priority is None:
                    raise WhatIfError("priority: required for a priority change (0-3)")
                c = dataclasses.replace(c, priority=priority)
            elif change == "schedule":
                c = dataclasses.replace(c, stages=(*c.stages, *extra_stages))
        after_campaigns.append(c)
    if change == "approve":
        if extra_campaign is None:
            raise WhatIfError("approve: the request to project is required")
        after_campaigns.append(extra_campaign)
    return before, dataclasses.replace(inp, campaigns=after_campaigns)


def compare(
    before: SchedulerInput, after: SchedulerInput, margin_s: float, subject: int | None
) -> tuple[list[Effect], Effect | None]:
    """Both projections, and every campaign or request whose finish or status moved."""
    p_before = project(before, "slack", margin_s)
    p_after = project(after, "slack", margin_s)
    now = after.now
    effects: list[Effect] = []
    subject_effect = None
    loads_before = {c.campaign_id: c for c in before.campaigns}
    for c in after.campaigns:
        pa = p_after[c.campaign_id]
        pb = p_before.get(c.campaign_id)
        groups = {s.request_id: s.request_deadline for s in c.stages}
        rows = [(None, c.deadline, pb.finish if pb else None, pa.finish)]
        rows += [
            (gid, deadline, pb.requests.get(gid) if pb else None, pa.requests.get(gid))
            for gid, deadline in groups.items()
        ]
        for gid, deadline, fb, fa in rows:
            effect = Effect(
                c.campaign_id,
                gid,
                feasibility(now, deadline, fb) if pb else "not_running",
                feasibility(now, deadline, fa),
                _when(fb),
                _when(fa),
            )
            if c.campaign_id == subject and gid is None:
                subject_effect = effect
                continue
            if c.campaign_id not in loads_before or c.campaign_id == subject:
                continue  # the subject's own requests are the decision, not its effect
            moved = effect.delta_s is not None and abs(effect.delta_s) >= 60
            if effect.status_changed or moved:
                effects.append(effect)
    effects.sort(key=lambda e: (not e.status_changed, -(e.delta_s or 0)))
    return effects, subject_effect


def what_if(
    change: str,
    campaign_id: int | None = None,
    *,
    priority: str | None = None,
    requests: list[ProductionRequest] | None = None,
    inputs: CycleInputs | None = None,
) -> WhatIf:
    """Project the live state with and without ``change`` (see the module's docstring):
    the four queries of ``load_inputs`` plus two for requests to expand."""
    inputs = inputs or load_inputs(campaign_ids=())
    inp = inputs.input
    weight = None
    if change == "priority":
        if priority not in PRIORITY_WEIGHT:
            raise WhatIfError(f"priority: one of {', '.join(PRIORITY_WEIGHT)}, not {priority!r}")
        weight = PRIORITY_WEIGHT[priority]
    extra_stages: list[StageLoad] = []
    extra_campaign = None
    if change in ("schedule", "approve"):
        if not requests:
            raise WhatIfError("requests: at least one request to project")
        target = campaign_id if change == "schedule" else HYPOTHETICAL
        extra_stages = request_loads(requests, target, start_id=-1)
        if change == "approve":
            r = requests[0]
            deadline = deadline_moment(r.deadline).timestamp()
            extra_campaign = CampaignLoad(
                campaign_id=HYPOTHETICAL,
                experiment_id=r.experiment_id,
                backend=r.experiment.default_backend,
                state=CampaignState.ACTIVE,
                priority=PRIORITY_WEIGHT.get(r.priority, 1),
                deadline=deadline,
                stages=tuple(extra_stages),
                arrival=inp.now,
            )
    before, after = apply(
        inp,
        change,
        campaign_id,
        priority=weight,
        extra_stages=extra_stages,
        extra_campaign=extra_campaign,
    )
    subject = HYPOTHETICAL if change == "approve" else campaign_id
    effects, subject_effect = compare(before, after, conf.priority_margin_s(), subject)
    return WhatIf(change, campaign_id, effects, subject_effect, inputs.now)

"""Feeding the scheduler: inputs from aggregates, stage dependencies, counters, estimates.

``plan_cycle`` loads everything the policy needs with a fixed number of
queries (five, whatever the number of campaigns or jobs) and returns its
decision; execution's ``submit_ready`` acts on it. The work waiting and in flight
comes from the stage counters, never from counting job rows: those grow with the
production (millions of planned jobs, hundreds of thousands running), and pages
call this on every view.
``release_dependents`` makes jobs ready as soon as their inputs succeeded.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from experiments.models import Experiment, SplitRule
from requests_app.choices import PRIORITY_WEIGHT, WORK_HELD_STATES

from .. import conf
from ..choices import (
    OPEN_CAMPAIGN_STATES,
    JobState,
)
from ..models import (
    COUNTER_FOR_STATE,
    RETRIED_COUNTER_FOR_STATE,
    Campaign,
    Job,
    Stage,
    deadline_moment,
)
from ..scheduler import CampaignLoad, Decision, SchedulerInput, StageLoad, decide
from .blockage import gave_up
from .partitions import effective_partition, partition_limits
from .testlaunch import ready_caps

MEDIAN_WINDOW = 101  # the latest succeeded jobs of a stage that make its walltime estimate
ID_CHUNK = 500  # ids per IN (...) list: far below SQLite's variable limit


@dataclass
class StageInfo:
    """What pages show next to a decision (names, not needed by the policy)."""

    stage_id: int
    campaign_id: int
    request_id: int
    sample_id: int
    name: str
    position: int


@dataclass
class CycleInputs:
    """The scheduler's input as loaded from the database, plus labels for display."""

    now: dt.datetime
    input: SchedulerInput
    stages: dict[int, StageInfo] = field(default_factory=dict)
    # Campaigns left out because their rows could not be read into the scheduler's terms
    # (``{campaign id: error}``): the cycle goes on without them, execution records it.
    failed: dict[int, Exception] = field(default_factory=dict)
    # The fault recorded on each campaign loaded this time (none when it has none).
    faults: dict[int, str] = field(default_factory=dict)


@dataclass
class CyclePlan:
    """A decision and the inputs it was made from."""

    inputs: CycleInputs
    decision: Decision

    def submissions(self) -> list[tuple[int, int]]:
        """``(stage_id, jobs)`` to submit now, most urgent first."""
        return self.decision.submissions()


def _chunks(ids: list[int], size: int = ID_CHUNK) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def load_inputs(
    now: dt.datetime | None = None, campaign_ids: Iterable[int] | None = None
) -> CycleInputs:
    """Load the scheduler's input with five queries (none per job or campaign).

    Every open campaign is loaded (the decision for one depends on all of
    them through shared capacity and quotas); ``campaign_ids`` only narrows
    the stage labels kept for display.
    """
    now = now or timezone.now()
    campaigns = list(
        Campaign.objects.filter(state__in=sorted(OPEN_CAMPAIGN_STATES)).values(
            "id",
            "experiment_id",
            "backend",
            "state",
            "priority",
            "deadline",
            "throttle",
            "created",
            "fault",
            "test_phase",
            "test_jobs",
            "batch_partition",
            "experiment__batch_partition",
        )
    )
    # Where each campaign's work runs, for the partitions' capacity and quotas.
    partition_of = {
        c["id"]: effective_partition(
            c["backend"], c["batch_partition"], c["experiment__batch_partition"]
        )
        for c in campaigns
    }
    # A test launch lets the scheduler see only the test jobs (no query without one).
    caps = ready_caps(campaigns)
    stage_rows = list(
        Stage.objects.filter(campaign__state__in=sorted(OPEN_CAMPAIGN_STATES))
        .values_list(
            "id",
            "campaign_id",
            "request_id",
            "sample_id",
            "position",
            "name",
            "walltime_s",
            "walltime_median_s",
            "input_stage_id",
            "request__deadline",
            "request__state",
            "request__priority",
            # Work from the counters execution keeps (recover recounts them), never a
            # count over the job rows: it grew with the jobs and ran on every page view.
            "n_planned",
            "n_ready",
            "n_queued",
            "n_running",
            "n_held",
            "n_succeeded",
            "retried_succeeded",
            "jobs_total",
            "campaign__backend",
            "campaign__experiment_id",
            named=True,  # rows as named tuples: thousands of them, on every page view
        )
        # Not Stage's default ordering: it joins samples and requests twice more and sorts
        # by names and dates (two thirds of the query's time). Nothing here depends on the
        # order (``decide`` sorts the stages itself; the sums are of whole job-seconds).
        .order_by("campaign_id", "id")
    )
    # Jobs in flight anywhere hold capacity and quota, charged to the backend their
    # campaign submits to; those of campaigns cancelled but still draining too.
    in_flight: dict[int, int] = {}
    backend_used: dict[str, int] = defaultdict(int)
    exp_used: dict[int, int] = defaultdict(int)
    part_used: dict[str, int] = defaultdict(int)
    exp_part_used: dict[tuple[int, str], int] = defaultdict(int)

    def charge_partition(key: str | None, experiment_id: int, n: int) -> None:
        if key is not None:
            part_used[key] += n
            exp_part_used[(experiment_id, key)] += n

    for s in stage_rows:
        n = max(s.n_queued + s.n_running + s.n_held, 0)
        if n:
            in_flight[s.id] = n
            backend_used[s.campaign__backend] += n
            exp_used[s.campaign__experiment_id] += n
            charge_partition(partition_of.get(s.campaign_id), s.campaign__experiment_id, n)
    draining = Q(n_queued__gt=0) | Q(n_running__gt=0) | Q(n_held__gt=0)
    for row in (
        Stage.objects.exclude(campaign__state__in=sorted(OPEN_CAMPAIGN_STATES))
        .filter(draining)
        .values(
            "campaign__backend",
            "campaign__experiment_id",
            "campaign__batch_partition",
            "campaign__experiment__batch_partition",
        )
        .annotate(n=Sum(F("n_queued") + F("n_running") + F("n_held")))
        .order_by()
    ):
        backend_used[row["campaign__backend"]] += row["n"]
        exp_used[row["campaign__experiment_id"]] += row["n"]
        key = effective_partition(
            row["campaign__backend"],
            row["campaign__batch_partition"],
            row["campaign__experiment__batch_partition"],
        )
        charge_partition(key, row["campaign__experiment_id"], row["n"])
    quotas = dict(Experiment.objects.values_list("id", "job_quota"))
    partitions = partition_limits()

    by_campaign: dict[int, list[StageLoad]] = defaultdict(list)
    labels: dict[int, StageInfo] = {}
    failed: dict[int, Exception] = {}
    wanted = set(campaign_ids) if campaign_ids is not None else None
    # Thousands of stages share a few hundred deadline dates: convert each date once.
    deadlines: dict[dt.date, float] = {}
    for s in stage_rows:
        if s.campaign_id in failed:
            continue
        # One stage whose values break the arithmetic leaves its campaign out, not the cycle.
        try:
            day = s.request__deadline
            if day not in deadlines:
                deadlines[day] = deadline_moment(day).timestamp()
            ready, planned = max(s.n_ready, 0), max(s.n_planned, 0)
            if s.id in caps:
                ready = min(ready, caps[s.id])
            flight = in_flight.get(s.id, 0)
            by_campaign[s.campaign_id].append(
                StageLoad(
                    stage_id=s.id,
                    campaign_id=s.campaign_id,
                    position=s.position,
                    ready=ready,
                    planned=planned,
                    in_flight=flight,
                    walltime_s=float(s.walltime_median_s or s.walltime_s),
                    request_id=s.request_id,
                    request_deadline=deadlines[s.request__deadline],
                    request_priority=PRIORITY_WEIGHT.get(s.request__priority, 1),
                    name=s.name,
                    input_stage_id=s.input_stage_id,
                    on_hold=s.request__state in WORK_HELD_STATES,
                    gave_up=gave_up(
                        s.jobs_total, s.n_succeeded - s.retried_succeeded, ready + planned + flight
                    ),
                )
            )
        except Exception as exc:  # whatever it is, it is this campaign's
            failed[s.campaign_id] = exc
            continue
        if wanted is None or s.campaign_id in wanted:
            labels[s.id] = StageInfo(
                s.id, s.campaign_id, s.request_id, s.sample_id, s.name, s.position
            )
    loads = []
    for c in campaigns:
        if c["id"] in failed:
            continue
        try:
            loads.append(
                CampaignLoad(
                    campaign_id=c["id"],
                    experiment_id=c["experiment_id"],
                    backend=c["backend"],
                    state=c["state"],
                    priority=PRIORITY_WEIGHT.get(c["priority"], 1),
                    deadline=deadline_moment(c["deadline"]).timestamp(),
                    stages=tuple(by_campaign.get(c["id"], ())),
                    throttle=c["throttle"],
                    arrival=c["created"].timestamp(),
                    partition=partition_of[c["id"]],
                )
            )
        except Exception as exc:  # as above
            failed[c["id"]] = exc
    if failed:
        labels = {k: v for k, v in labels.items() if v.campaign_id not in failed}
    return CycleInputs(
        now=now,
        input=SchedulerInput(
            now=now.timestamp(),
            capacity=conf.backend_capacity(),
            quotas=quotas,
            campaigns=loads,
            in_flight_backend=dict(backend_used),
            in_flight_experiment=dict(exp_used),
            partition_capacity=partitions.capacity,
            partition_quotas=partitions.quotas,
            in_flight_partition=dict(part_used),
            in_flight_experiment_partition=dict(exp_part_used),
        ),
        stages=labels,
        failed=failed,
        faults={c["id"]: c["fault"] for c in campaigns if c["fault"] and c["id"] not in failed},
    )


def plan_cycle(
    now: dt.datetime | None = None, campaign_ids: Iterable[int] | None = None
) -> CyclePlan:
    """One scheduling decision: how many jobs each ready stage may submit now, and why
    the others wait. Reads the database (five queries), writes nothing."""
    inputs = load_inputs(now, campaign_ids)
    return CyclePlan(inputs, decide(inputs.input, "slack", conf.priority_margin_s()))


def release_dependents(job_ids: Iterable[int]) -> dict[int, int]:
    """Make ready the jobs whose inputs have now all succeeded; return ``{stage_id: released}``.

    For execution to call with the ids of jobs that just succeeded. A job of
    a stage that reads another reads ``input_count`` outputs from
    ``input_first``; it is released (compare-and-set ``planned -> ready``)
    only when every one of those indexes has a succeeded attempt. Also
    refreshes the walltime estimates of the stages that progressed.
    Harmless when repeated.
    """
    ids = sorted(set(job_ids))
    done_by_stage: dict[int, set[int]] = defaultdict(set)
    for chunk in _chunks(ids):
        for stage_id, index in Job.objects.filter(
            pk__in=chunk, state=JobState.SUCCEEDED
        ).values_list("stage_id", "index"):
            done_by_stage[stage_id].add(index)
    if not done_by_stage:
        return {}
    released: dict[int, int] = {}
    now = timezone.now()
    dependents = Stage.objects.filter(input_stage_id__in=list(done_by_stage)).values(
        "id", "input_stage_id", "split", "files_per_job"
    )
    for dep in dependents:
        source = dep["input_stage_id"]
        per_job = dep["files_per_job"] if dep["split"] == SplitRule.FILES else 1
        per_job = per_job or 1
        indexes = sorted({i // per_job for i in done_by_stage[source]})
        candidates = []
        for chunk in _chunks(indexes):
            # Retries waiting out a backoff (not_before) are not ours to release.
            candidates += Job.objects.filter(
                stage_id=dep["id"], state=JobState.PLANNED, index__in=chunk, not_before=None
            ).values_list("id", "input_first", "input_count")
        needed = sorted(
            {
                i
                for _id, first, count in candidates
                if first is not None
                for i in range(first, first + count)
            }
        )
        succeeded: set[int] = set()
        for chunk in _chunks(needed):
            succeeded.update(
                Job.objects.filter(
                    stage_id=source, state=JobState.SUCCEEDED, index__in=chunk
                ).values_list("index", flat=True)
            )
        ready = [
            job_id
            for job_id, first, count in candidates
            if first is not None and all(i in succeeded for i in range(first, first + count))
        ]
        n = 0
        for chunk in _chunks(ready):
            n += Job.objects.filter(pk__in=chunk, state=JobState.PLANNED, not_before=None).update(
                state=JobState.READY, state_since=now
            )
        if n:
            # Counted from what the compare-and-set really changed, so two
            # workers releasing the same jobs never count them twice.
            Stage.objects.filter(pk=dep["id"]).update(
                n_planned=F("n_planned") - n, n_ready=F("n_ready") + n
            )
            released[dep["id"]] = n
    refresh_walltime_estimates(list(done_by_stage))
    return released


def refresh_walltime_estimates(stage_ids: Iterable[int]) -> None:
    """Replace each stage's walltime estimate by the median of its latest succeeded jobs."""
    for stage_id in stage_ids:
        observed = list(
            Job.objects.filter(
                stage_id=stage_id, state=JobState.SUCCEEDED, walltime_observed_s__isnull=False
            )
            .order_by("-finished")
            .values_list("walltime_observed_s", flat=True)[:MEDIAN_WINDOW]
        )
        if observed:
            median = max(int(statistics.median(observed)), 1)
            Stage.objects.filter(pk=stage_id).exclude(walltime_median_s=median).update(
                walltime_median_s=median
            )


def recount_stages(stage_ids: Iterable[int]) -> None:
    """Rebuild the per-state job counters of stages (and of their retried attempts: those
    another attempt names as its parent) from two aggregate queries a chunk."""
    ids = sorted(set(stage_ids))
    for chunk in _chunks(ids):
        counts: dict[int, dict[str, int]] = {pk: {} for pk in chunk}
        for row in (
            Job.objects.filter(stage_id__in=chunk)
            .values("stage_id", "state")
            .annotate(n=Count("id"))
            .order_by()
        ):
            counts[row["stage_id"]][row["state"]] = row["n"]
        retried: dict[int, dict[str, int]] = {pk: {} for pk in chunk}
        for row in (
            Job.objects.filter(stage_id__in=chunk, parent__isnull=False)
            .values("stage_id", "parent__state")
            .annotate(n=Count("parent_id", distinct=True))
            .order_by()
        ):
            retried[row["stage_id"]][row["parent__state"]] = row["n"]
        stages = list(Stage.objects.filter(pk__in=chunk).only("id"))
        for stage in stages:
            for state, column in COUNTER_FOR_STATE.items():
                setattr(stage, column, counts[stage.pk].get(state, 0))
            for state, column in RETRIED_COUNTER_FOR_STATE.items():
                setattr(stage, column, retried[stage.pk].get(state, 0))
        Stage.objects.bulk_update(
            stages, [*COUNTER_FOR_STATE.values(), *RETRIED_COUNTER_FOR_STATE.values()]
        )

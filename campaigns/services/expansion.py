"""Scheduling requests into a campaign: every sample expands into stages and planned jobs.

Everything is checked before anything is written, and the writes are one
transaction of a few bulk inserts (the number of statements does not grow
with the number of jobs, beyond one per ``OPOS_EXPANSION_BATCH`` rows): a
refused request leaves nothing half-planned, and a ten-million-event sample
is planned in seconds.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from common import limits
from common.decisions import Effect
from experiments.models import Experiment, SplitRule, StageTemplate
from experiments.namespaces import foreign_namespace
from experiments.parameters import validate_parameters
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest, Sample
from requests_app.services import TransitionError, system_transition

from .. import conf
from ..choices import OPEN_CAMPAIGN_STATES, CampaignEventKind, JobState
from ..extensions import effect_at_decision
from ..models import (
    Campaign,
    CampaignEvent,
    CampaignRequest,
    Dataset,
    Job,
    OutputFile,
    Stage,
)
from .errors import CampaignError, require_operator
from .templates import experiment_liaisons, template_problems, topological_order

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

MAX_REQUESTS_PER_CALL = 200


@dataclass
class StagePlan:
    """One stage of one sample, computed in memory before anything is written."""

    template_stage: StageTemplate
    parameters: dict[str, Any]
    dataset_name: str
    input: StagePlan | None = None
    firsts: list[int] = field(default_factory=list)  # first event of each job
    counts: list[int] = field(default_factory=list)  # events of each job
    input_first: list[int] | None = None  # first feeding job (or file) of each job
    input_count: list[int] | None = None
    input_files: list[list[str]] | None = None  # file names, for input datasets

    @property
    def jobs(self) -> int:
        return len(self.counts)


@dataclass
class ScheduleResult:
    """What ``schedule_requests`` planned."""

    campaign: Campaign
    requests: list[ProductionRequest]
    stages: int
    jobs: int


def split_events(events: int, per_job: int) -> tuple[list[int], list[int]]:
    """First event and event count of each job; a remainder makes a smaller last job."""
    firsts = list(range(0, events, per_job))
    counts = [per_job] * len(firsts)
    if firsts:
        counts[-1] = events - firsts[-1]
    return firsts, counts


def group_inputs(n_inputs: int, per_job: int) -> tuple[list[int], list[int]]:
    """Which inputs (by ordinal) each job reads: ``per_job`` at a time, fewer in the last."""
    firsts = list(range(0, n_inputs, per_job))
    counts = [min(per_job, n_inputs - first) for first in firsts]
    return firsts, counts


def _sums(values: list[int], firsts: list[int], counts: list[int]) -> list[int]:
    prefix = [0, *itertools.accumulate(values)]
    return [prefix[f + c] - prefix[f] for f, c in zip(firsts, counts, strict=True)]


def plan_sample(
    sample: Sample,
    stages: list[StageTemplate],
    input_files: list[tuple[str, int]] | None,
    label: str,
) -> tuple[list[StagePlan], list[str]]:
    """Split one sample's work into jobs, stage by stage (``stages`` in topological order).

    Pure: no queries. Returns the plans and the problems (each naming the
    sample and the field at fault).
    """
    problems: list[str] = []
    plans: dict[int, StagePlan] = {}
    # Counted before anything is built: a sample of 10**12 one-event jobs is refused
    # here, by arithmetic, instead of exhausting memory building its job list.
    counts = limits.stage_job_counts(
        sample.events,
        sample.events_per_job,
        stages,
        None if input_files is None else len(input_files),
    )
    total = sum(counts.values())
    limit = conf.max_jobs_per_sample()
    if total > limit:
        return [], [
            f"{label}: events_per_job: {sample.events} events at {sample.events_per_job} per job "
            f"make {total} jobs over {len(stages)} stages, more than the limit of {limit} "
            "(OPOS_MAX_JOBS_PER_SAMPLE); raise events_per_job"
        ]
    last = max(stages, key=lambda s: s.position)
    for st in stages:
        try:
            params = validate_parameters(
                st.parameters or {},
                {k: v for k, v in (sample.parameters or {}).items() if k in (st.parameters or {})},
            )
        except ValidationError as exc:
            problems.extend(f"{label}: parameters: {m}" for m in exc.messages)
            params = {}
        name = sample.output_dataset if st is last else f"{sample.output_dataset}.{st.name}"
        if len(name) > 255:
            problems.append(f"{label}: output_dataset: too long to name the {st.name} dataset")
        plan = StagePlan(st, params, name, input=plans.get(st.input_stage_id))
        if st.split == SplitRule.EVENTS:
            if plan.input is not None and plan.input.template_stage.split != SplitRule.EVENTS:
                problems.append(
                    f"{label}: stage {st.name} splits by events but reads "
                    f"{plan.input.template_stage.name}, which splits by files; split it by files"
                )
                continue
            plan.firsts, plan.counts = split_events(sample.events, sample.events_per_job)
            if plan.input is not None:  # one job per job of the (same-split) input stage
                plan.input_first = list(range(plan.jobs))
                plan.input_count = [1] * plan.jobs
        else:
            per_job = st.files_per_job or 0
            if per_job <= 0:
                problems.append(f"{label}: stage {st.name}: files_per_job must be above zero")
                continue
            if plan.input is not None:
                # One output file per job of the input stage.
                plan.input_first, plan.input_count = group_inputs(plan.input.jobs, per_job)
                plan.firsts = [plan.input.firsts[f] for f in plan.input_first]
                plan.counts = _sums(plan.input.counts, plan.input_first, plan.input_count)
            elif input_files is not None:
                if not input_files:
                    problems.append(
                        f"{label}: input_dataset: {sample.input_dataset} has no files, "
                        f"stage {st.name} would make zero jobs"
                    )
                    continue
                plan.input_first, plan.input_count = group_inputs(len(input_files), per_job)
                events = [e for _n, e in input_files]
                plan.counts = _sums(events, plan.input_first, plan.input_count)
                plan.firsts = [0, *itertools.accumulate(plan.counts)][:-1]
                names = [n for n, _e in input_files]
                plan.input_files = [
                    names[f : f + c]
                    for f, c in zip(plan.input_first, plan.input_count, strict=True)
                ]
            else:
                problems.append(
                    f"{label}: stage {st.name} splits by files but reads no earlier stage "
                    "and the sample has no input_dataset"
                )
                continue
        plans[st.id] = plan
    total = sum(p.jobs for p in plans.values())
    if total == 0 and not problems:
        problems.append(f"{label}: the split makes zero jobs")
    return [plans[st.id] for st in stages if st.id in plans], problems


def _clean_ids(request_ids: Sequence[Any]) -> list[int]:
    if isinstance(request_ids, str | bytes) or not isinstance(request_ids, Sequence | set):
        raise CampaignError("Nothing to schedule.", ["requests: a list of request ids is required"])
    ids: list[int] = []
    for value in request_ids:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise CampaignError(
                "Nothing to schedule.", [f"requests: {value!r} is not a request id"]
            ) from None
        if number not in ids:
            ids.append(number)
    if not ids:
        raise CampaignError("Nothing to schedule.", ["requests: give at least one request id"])
    if len(ids) > MAX_REQUESTS_PER_CALL:
        raise CampaignError(
            "Too many requests at once.", [f"requests: at most {MAX_REQUESTS_PER_CALL} per call"]
        )
    return ids


def schedule_requests(
    campaign: Campaign | int,
    request_ids: Sequence[int],
    actor: AbstractBaseUser,
    note: str = "",
    effect: Effect | None = None,
) -> ScheduleResult:
    """Schedule approved requests into an open campaign, planning all their work.

    Each request must be approved, of the campaign's experiment, in no other
    campaign, with a deadline not past; each sample's template must be able
    to run (no cycle, registered approved code of the experiment, valid
    parameters) and split into at least one and at most
    ``OPOS_MAX_JOBS_PER_SAMPLE`` jobs. Every problem of every request is
    reported at once; nothing is written unless all of them can be planned.
    Each request then moves to ``scheduled`` through the intake service.
    The scheduling records its effect on everyone else's work with each request's event
    (``common.decisions``): ``effect``, what the decision page showed; without one (the
    API, the CLI) it is computed at the scheduling, or why not is recorded.
    """
    require_operator(actor, "schedule requests")
    ids = _clean_ids(request_ids)
    campaign_id = campaign if isinstance(campaign, int) else campaign.pk
    with transaction.atomic():
        # Lock the campaign first, the requests second (always in this order,
        # so two operators scheduling at once queue instead of deadlocking).
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if campaign.state not in OPEN_CAMPAIGN_STATES:
            raise CampaignError(
                f"Cannot schedule into a {campaign.get_state_display().lower()} campaign.",
                [f"state: {campaign.state}; requests can join planned, active or paused campaigns"],
                kind="conflict",
            )
        requests = list(
            ProductionRequest.objects.select_for_update().filter(pk__in=ids).order_by("pk")
        )
        plans, conflicts, problems = _plan_requests(campaign, ids, requests)
        if problems or conflicts:
            raise CampaignError(
                "The requests cannot be scheduled; nothing was planned.",
                conflicts + problems,
                kind="invalid" if problems else "conflict",
            )
        # Checked: its effect on others, projected before anything is written.
        decided = effect or effect_at_decision(
            {"change": "schedule", "campaign": campaign.pk, "requests": sorted(ids)}
        )
        stages, jobs = _write_plan(campaign, plans, actor)
        CampaignEvent.objects.bulk_create(
            CampaignEvent(
                campaign=campaign,
                kind=CampaignEventKind.REQUEST_ADDED,
                actor=actor,
                reason=note,
                request=request,
                changes={"request": [None, request.number]} | decided.as_changes(),
            )
            for request in requests
        )
        scheduled = []
        for request in requests:
            try:
                scheduled.append(
                    system_transition(
                        request.pk,
                        "schedule",
                        note=note or f"Scheduled into campaign {campaign.name}.",
                        actor=actor,
                    )
                )
            except TransitionError as exc:
                # Rolls back everything planned above: all or nothing.
                raise CampaignError(
                    f"{request.number}: {exc.detail}", exc.reasons, kind="conflict"
                ) from exc
    return ScheduleResult(campaign, scheduled, stages, jobs)


def _plan_requests(
    campaign: Campaign, ids: list[int], requests: list[ProductionRequest]
) -> tuple[list[tuple[ProductionRequest, Sample, list[StagePlan]]], list[str], list[str]]:
    """Check every request and plan every sample in memory, with a fixed number of queries."""
    experiment = campaign.experiment
    today = timezone.localdate()
    conflicts: list[str] = []
    problems: list[str] = []
    found = {r.pk for r in requests}
    problems += [f"requests: no request with id {pk}" for pk in ids if pk not in found]
    if problem := limits.deadline_problem(campaign.deadline, today=today):
        problems.append(f"deadline: the campaign's deadline {problem}; move it first")
    linked = dict(
        CampaignRequest.objects.filter(request__in=found).values_list(
            "request_id", "campaign__name"
        )
    )
    for r in requests:
        if r.experiment_id != experiment.id:
            problems.append(f"requests: {r.number} belongs to another experiment")
        if r.state != RequestState.APPROVED:
            conflicts.append(
                f"requests: {r.number} is {RequestState(r.state).label.lower()}; "
                "only approved requests can be scheduled"
            )
        if r.pk in linked:
            conflicts.append(f"requests: {r.number} is already in campaign {linked[r.pk]}")
        if problem := limits.deadline_problem(r.deadline, today=today):
            problems.append(f"requests: {r.number}: deadline {problem}")
    if problems or conflicts:
        return [], conflicts, problems

    samples = list(
        Sample.objects.filter(request__in=found)
        .select_related("template")
        .order_by("request", "id")
    )
    by_request: dict[int, list[Sample]] = {}
    for sample in samples:
        by_request.setdefault(sample.request_id, []).append(sample)
    problems += [f"requests: {r.number} has no samples" for r in requests if r.pk not in by_request]
    template_ids = {s.template_id for s in samples}
    stages_of: dict[int, list[StageTemplate]] = {t: [] for t in template_ids}
    for st in (
        StageTemplate.objects.filter(template__in=template_ids)
        .select_related("code")
        .prefetch_related("code__owners")
    ):
        stages_of[st.template_id].append(st)
    liaisons = experiment_liaisons(experiment)
    template_ok: dict[int, list[str]] = {}
    for sample in samples:
        if sample.template_id not in template_ok:
            template_ok[sample.template_id] = template_problems(
                sample.template, stages_of[sample.template_id], experiment, liaisons
            )
    files = _input_files(experiment, {s.input_dataset for s in samples if s.input_dataset})

    planned = []
    names: dict[str, str] = {}
    number = {r.pk: r.number for r in requests}
    request_of = {r.pk: r for r in requests}
    too_big = _requests_over_the_job_limit(samples, stages_of, files, number, problems)
    for sample in samples:
        if sample.request_id in too_big:
            continue
        label = f"{number[sample.request_id]}/{sample.name}"
        bad = template_ok[sample.template_id]
        if bad:
            problems += [f"{label}: {p}" for p in bad]
            continue
        inputs = None
        if sample.input_dataset:
            inputs = files.get(sample.input_dataset)
            if inputs is None:
                problems.append(
                    f"{label}: input_dataset: {sample.input_dataset} is not in the catalogue "
                    f"of {experiment.slug}"
                )
                continue
        stage_plans, issues = plan_sample(
            sample, topological_order(stages_of[sample.template_id]), inputs, label
        )
        problems += issues
        for plan in stage_plans:
            if plan.dataset_name in names:
                problems.append(
                    f"{label}: output_dataset: {plan.dataset_name} is also produced by "
                    f"{names[plan.dataset_name]}"
                )
            names[plan.dataset_name] = label
        planned.append((request_of[sample.request_id], sample, stage_plans))
    # Lines filed before names were confined to the experiment's namespace may still name
    # another experiment's: refused here, so that they can never take its names.
    heads = {n.partition(":")[0] for n in names if ":" in n} - {experiment.slug}
    slugs = (
        set(Experiment.objects.filter(slug__in=heads).values_list("slug", flat=True))
        if heads
        else set()
    )
    for name, label in names.items():
        other = foreign_namespace(experiment.slug, name, slugs)
        if other:
            problems.append(f"{label}: output_dataset: {name} is in {other}'s namespace")
    taken = Dataset.objects.filter(name__in=list(names)).values_list("name", flat=True)
    problems += [
        f"{names[n]}: output_dataset: {n} already exists in the catalogue; choose another name"
        for n in taken
    ]
    return planned, conflicts, problems


def _requests_over_the_job_limit(
    samples: list[Sample],
    stages_of: dict[int, list[StageTemplate]],
    files: dict[str, list[tuple[str, int]]],
    number: dict[int, str],
    problems: list[str],
) -> set[int]:
    """Requests whose samples together make more jobs than ``OPOS_MAX_JOBS_PER_REQUEST``,
    counted by arithmetic before any sample is planned; each is added to ``problems``."""
    totals: dict[int, int] = {}
    sample_over: set[int] = set()  # plan_sample names these samples (raise events_per_job)
    for sample in samples:
        inputs = files.get(sample.input_dataset) if sample.input_dataset else None
        counts = limits.stage_job_counts(
            sample.events,
            sample.events_per_job,
            stages_of[sample.template_id],
            None if inputs is None else len(inputs),
        )
        jobs = sum(counts.values())
        if jobs > limits.max_jobs_per_sample():
            sample_over.add(sample.request_id)
        totals[sample.request_id] = totals.get(sample.request_id, 0) + jobs
    limit = limits.max_jobs_per_request()
    over = {pk for pk, jobs in totals.items() if jobs > limit and pk not in sample_over}
    problems += [
        f"requests: {number[pk]}: its samples make {totals[pk]} jobs together, more than the "
        f"limit of {limit} (OPOS_MAX_JOBS_PER_REQUEST); split the request"
        for pk in sorted(over)
    ]
    return over


def _input_files(
    experiment: Experiment, dataset_names: set[str]
) -> dict[str, list[tuple[str, int]]]:
    """Valid files of the input datasets, by dataset name, in name order (two queries)."""
    if not dataset_names:
        return {}
    datasets = dict(
        Dataset.objects.filter(experiment=experiment, name__in=dataset_names).values_list(
            "id", "name"
        )
    )
    files: dict[str, list[tuple[str, int]]] = {name: [] for name in datasets.values()}
    for dataset_id, name, events in (
        OutputFile.objects.filter(dataset_id__in=list(datasets), invalidated__isnull=True)
        .order_by("dataset_id", "name")
        .values_list("dataset_id", "name", "events")
    ):
        files[datasets[dataset_id]].append((name, events))
    return files


def _write_plan(
    campaign: Campaign,
    planned: list[tuple[ProductionRequest, Sample, list[StagePlan]]],
    actor: AbstractBaseUser,
) -> tuple[int, int]:
    """Insert links, datasets, stages and jobs in bulk; return (stages, jobs)."""
    now = timezone.now()
    experiment = campaign.experiment
    request_ids = sorted({request.pk for request, _s, _p in planned})
    CampaignRequest.objects.bulk_create(
        CampaignRequest(campaign=campaign, request_id=pk, added_by=actor) for pk in request_ids
    )
    all_plans = [plan for _r, _s, plans in planned for plan in plans]
    input_names = {s.input_dataset for _r, s, _p in planned if s.input_dataset}
    inputs = dict(
        Dataset.objects.filter(experiment=experiment, name__in=input_names).values_list(
            "name", "id"
        )
    )
    datasets = Dataset.objects.bulk_create(
        Dataset(experiment=experiment, campaign=campaign, name=plan.dataset_name)
        for plan in all_plans
    )
    dataset_id = {d.name: d.pk for d in datasets}

    # Stages are inserted in waves of equal depth, so each wave knows the ids
    # of the stages it reads from (bulk_create returns primary keys).
    stage_of: dict[int, Stage] = {}  # id(plan) -> Stage
    depth = {}
    for plan in all_plans:
        depth[id(plan)] = 0 if plan.input is None else depth[id(plan.input)] + 1
    for level in range(max(depth.values(), default=-1) + 1):
        wave = []
        for request, sample, plans in planned:
            for plan in plans:
                if depth[id(plan)] != level:
                    continue
                st = plan.template_stage
                ready = plan.input is None
                stage = Stage(
                    campaign=campaign,
                    request=request,
                    sample=sample,
                    template_stage=st,
                    position=st.position,
                    name=st.name,
                    code=st.code,
                    code_sha256=st.code.sha256,
                    code_location=st.code.location,
                    parameters=plan.parameters,
                    cores=st.cores,
                    memory_mb=st.memory_mb,
                    walltime_s=st.walltime_s,
                    split=st.split,
                    events_per_job=sample.events_per_job if st.split == SplitRule.EVENTS else None,
                    files_per_job=st.files_per_job if st.split == SplitRule.FILES else None,
                    input_stage=stage_of[id(plan.input)] if plan.input is not None else None,
                    input_dataset_id=inputs.get(sample.input_dataset)
                    if plan.input is None and plan.input_files is not None
                    else None,
                    output_dataset_id=dataset_id[plan.dataset_name],
                    jobs_total=plan.jobs,
                    n_ready=plan.jobs if ready else 0,
                    n_planned=0 if ready else plan.jobs,
                )
                stage_of[id(plan)] = stage
                wave.append(stage)
        Stage.objects.bulk_create(wave)

    batch = conf.expansion_batch()
    rows = itertools.chain.from_iterable(
        _job_rows(stage_of[id(plan)].pk, plan, now) for plan in all_plans
    )
    jobs = 0
    while chunk := list(itertools.islice(rows, batch)):
        _insert_jobs(chunk)
        jobs += len(chunk)
    return len(all_plans), jobs


# Columns that differ from job to job when planning; every other column gets
# its field's default, so fields added to Job later need nothing here.
JOB_VALUES = (
    "stage_id",
    "index",
    "state",
    "state_since",
    "events_first",
    "events",
    "input_first",
    "input_count",
    "input_files",
)


def _insert_jobs(rows: list[tuple]) -> None:
    """Insert planned jobs in bulk: ``COPY`` on PostgreSQL, one prepared statement
    executed for every row elsewhere.

    Not ``bulk_create``: on SQLite Django caps a statement at 999 parameters
    (about 40 job rows), so a 100,000-job plan would take thousands of
    statements, and building a model instance per row costs more than the
    insert itself. On PostgreSQL, ``executemany`` quotes every value client
    side (Django's cursors bind on the client), four times slower than
    ``COPY``, which streams the rows. Values are prepared by the fields.
    """
    varying = [Job._meta.get_field(name) for name in JOB_VALUES]
    constant = [f for f in Job._meta.concrete_fields if not f.primary_key and f not in varying]
    defaults = tuple(f.get_db_prep_save(f.get_default(), connection) for f in constant)
    quote = connection.ops.quote_name
    table = quote(Job._meta.db_table)
    columns = ", ".join(quote(f.column) for f in (*varying, *constant))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row + defaults)
            return
        placeholders = ", ".join(["%s"] * (len(varying) + len(constant)))
        cursor.executemany(
            f"INSERT INTO {table} ({columns}) VALUES ({placeholders})",  # noqa: S608
            [row + defaults for row in rows],
        )


def _job_rows(stage_id: int, plan: StagePlan, now: dt.datetime) -> Iterator[tuple]:
    """Rows of ``JOB_VALUES``, one per job of the stage."""
    state = JobState.READY if plan.input is None else JobState.PLANNED
    files_field = Job._meta.get_field("input_files")
    since = Job._meta.get_field("state_since").get_db_prep_save(now, connection)
    no_files = files_field.get_db_prep_save([], connection)
    n = plan.jobs
    in_first = plan.input_first or [None] * n
    in_count = plan.input_count or [0] * n
    in_files = plan.input_files
    for i in range(n):
        files = (
            no_files if in_files is None else files_field.get_db_prep_save(in_files[i], connection)
        )
        yield (
            stage_id,
            i,
            state,
            since,
            plan.firsts[i],
            plan.counts[i],
            in_first[i],
            in_count[i],
            files,
        )


def stage_job_counts(sample: Sample, stages: list[StageTemplate]) -> dict[int, int]:
    """Jobs each template stage would make for ``sample``, without planning it (forecasts).

    An input dataset is counted as one file per ``events_per_job`` events:
    close enough for a forecast, and no catalogue query.
    """
    base = math.ceil(sample.events / sample.events_per_job)
    jobs: dict[int, int] = {}
    for st in topological_order(stages):
        if st.split == SplitRule.EVENTS or not st.files_per_job:
            jobs[st.id] = base
        else:
            jobs[st.id] = math.ceil(jobs.get(st.input_stage_id, base) / st.files_per_job)
    return jobs

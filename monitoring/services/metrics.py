"""``/metrics`` in the Prometheus text exposition format (version 0.0.4).

Written by hand (a page of code) rather than with ``prometheus_client``: every
value is read from the database at scrape time (the web process holds no
counters), so what we need is only the text format: ``# HELP``/``# TYPE``
lines, samples with escaped label values, one family per name.

Every family is a fixed number of aggregate queries (stage counters, submission
rows, task counters, one scheduler decision): the scrape costs the same with a
thousand jobs or a million.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Count, Sum
from django.utils import timezone

from campaigns import conf as campaigns_conf
from campaigns.choices import OPEN_CAMPAIGN_STATES, JobState
from campaigns.models import (
    COUNTER_FOR_STATE,
    RETRIED_COUNTER_FOR_STATE,
    Campaign,
    Job,
    Stage,
    StuckFlag,
    Submission,
)
from campaigns.services.planning import plan_cycle
from experiments.models import Experiment
from requests_app.models import ProductionRequest

from ..models import Allocation, TaskStat
from . import accounting, sla
from .operations import FAILED_STATES
from .progress import jobs_by_state, totals
from .snapshots import last_snapshot_at

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Labels = dict[str, str]


def escape(value: str) -> str:
    """A label value as the text format wants it: backslash, quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def number(value: float | int) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


@dataclass
class Family:
    """One metric family: a name, its help and type, and its samples."""

    name: str
    kind: str  # gauge, counter, summary
    help: str
    samples: list[tuple[str, Labels, float]] = field(default_factory=list)

    def add(self, value: float | int, suffix: str = "", **labels: str) -> None:
        self.samples.append((suffix, labels, value))

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}"
        yield f"# TYPE {self.name} {self.kind}"
        for suffix, labels, value in self.samples:
            if labels:
                inner = ",".join(f'{k}="{escape(v)}"' for k, v in sorted(labels.items()))
                yield f"{self.name}{suffix}{{{inner}}} {number(value)}"
            else:
                yield f"{self.name}{suffix} {number(value)}"


def _ts(moment: dt.datetime | None) -> float:
    return moment.timestamp() if moment else 0.0


def jobs_families() -> list[Family]:
    """Jobs by state per backend and experiment, from the stage counters (one query)."""
    jobs = Family(
        "opos_jobs",
        "gauge",
        "Jobs by the state of their latest attempt, per batch backend and experiment.",
    )
    sums = {state: Sum(column) for state, column in COUNTER_FOR_STATE.items()}
    sums.update({column: Sum(column) for column in RETRIED_COUNTER_FOR_STATE.values()})
    for row in (
        Stage.objects.order_by()
        .values("campaign__backend", "campaign__experiment__slug")
        .annotate(**sums)
    ):
        by_state = jobs_by_state(row)
        for state in JobState.values:
            jobs.add(
                by_state[state],
                backend=row["campaign__backend"],
                experiment=row["campaign__experiment__slug"],
                state=state,
            )
    failures = Family(
        "opos_job_failures",
        "gauge",
        "Failed or lost attempts of open campaigns, by experiment and failure class.",
    )
    for row in (
        Job.objects.filter(
            stage__campaign__state__in=sorted(OPEN_CAMPAIGN_STATES), state__in=FAILED_STATES
        )
        .order_by()
        .values("stage__campaign__experiment__slug", "failure_class")
        .annotate(n=Count("id"))
    ):
        failures.add(
            row["n"],
            experiment=row["stage__campaign__experiment__slug"],
            failure_class=row["failure_class"] or "unclassified",
        )
    return [jobs, failures]


def campaign_families() -> list[Family]:
    """Campaigns and requests by state; progress and deadline of each open campaign."""
    campaigns = Family("opos_campaigns", "gauge", "Campaigns by experiment and state.")
    for row in (
        Campaign.objects.order_by().values("experiment__slug", "state").annotate(n=Count("id"))
    ):
        campaigns.add(row["n"], experiment=row["experiment__slug"], state=row["state"])
    requests = Family("opos_requests", "gauge", "Production requests by experiment and state.")
    for row in (
        ProductionRequest.objects.order_by()
        .values("experiment__slug", "state")
        .annotate(n=Count("id"))
    ):
        requests.add(row["n"], experiment=row["experiment__slug"], state=row["state"])
    done = Family("opos_campaign_events_done", "gauge", "Events through the last stage.")
    target = Family("opos_campaign_events_target", "gauge", "Events the campaign must produce.")
    deadline = Family(
        "opos_campaign_deadline_timestamp_seconds", "gauge", "When the deadline day ends."
    )
    blocked = Family(
        "opos_campaign_blocked",
        "gauge",
        "1 when work is left that will not run without an operator (jobs gave up, or "
        "scheduling or submission of the campaign raised).",
    )
    open_campaigns = {
        c.pk: c
        for c in Campaign.objects.filter(state__in=sorted(OPEN_CAMPAIGN_STATES)).select_related(
            "experiment"
        )
    }
    progress = totals(Stage.objects.filter(campaign_id__in=list(open_campaigns)), "campaign_id")
    for pk, c in sorted(open_campaigns.items()):
        labels = {"experiment": c.experiment.slug, "campaign": c.name, "campaign_id": str(pk)}
        p = progress.get(pk)
        done.add(p.events_done if p else 0, **labels)
        target.add(p.events_target if p else 0, **labels)
        deadline.add(c.deadline_at.timestamp(), **labels)
        blocked.add(int(bool(c.fault or (p and p.gave_up))), **labels)
    return [campaigns, requests, done, target, deadline, blocked]


def execution_families() -> list[Family]:
    """Submissions, backend capacity, stuck flags, task counters, snapshot freshness."""
    submissions = Family(
        "opos_submissions_total", "counter", "Batch submissions (arrays) by backend and state."
    )
    submitted_jobs = Family(
        "opos_submitted_jobs_total", "counter", "Jobs submitted in arrays, by backend."
    )
    for row in (
        Submission.objects.order_by()
        .values("backend", "state")
        .annotate(n=Count("id"), jobs=Sum("size"))
    ):
        submissions.add(row["n"], backend=row["backend"], state=row["state"])
        if row["state"] == "submitted":
            submitted_jobs.add(row["jobs"] or 0, backend=row["backend"])
    capacity = Family("opos_backend_capacity", "gauge", "Jobs in flight a backend takes at most.")
    for name, cap in sorted(campaigns_conf.backend_capacity().items()):
        capacity.add(cap, backend=name)
    stuck = Family("opos_stuck_flags", "gauge", "Open stuck flags by kind.")
    for kind, n in StuckFlag.objects.open().order_by().values_list("kind").annotate(n=Count("id")):
        stuck.add(n, kind=kind)
    return [submissions, submitted_jobs, capacity, stuck]


def task_families() -> list[Family]:
    """Celery task runs, failures and durations (kept by monitoring.instrumentation)."""
    runs = Family("opos_task_runs_total", "counter", "Celery task runs, by task.")
    failures = Family("opos_task_failures_total", "counter", "Celery task runs that failed.")
    retries = Family(
        "opos_task_retries_total", "counter", "Celery task runs that asked for a retry."
    )
    duration = Family("opos_task_duration_seconds", "summary", "Celery task run time.")
    last = Family("opos_task_last_duration_seconds", "gauge", "Run time of the last run.")
    success = Family(
        "opos_task_last_success_timestamp_seconds", "gauge", "When the task last succeeded."
    )
    results = Family(
        "opos_task_results_total",
        "counter",
        "Sums of what task runs reported (jobs submitted, ...).",
    )
    poll = Family("opos_poll_cycle_duration_seconds", "gauge", "Duration of the last poll cycle.")
    for stat in TaskStat.objects.order_by("name"):
        runs.add(stat.runs, task=stat.name)
        failures.add(stat.failures, task=stat.name)
        retries.add(stat.retries, task=stat.name)
        duration.add(stat.duration_sum_s, "_sum", task=stat.name)
        duration.add(stat.runs, "_count", task=stat.name)
        if stat.last_duration_s is not None:
            last.add(stat.last_duration_s, task=stat.name)
        success.add(_ts(stat.last_success_at), task=stat.name)
        for key, value in sorted((stat.results or {}).items()):
            results.add(int(value), task=stat.name, field=key)
        if stat.name == "campaigns.poll" and stat.last_duration_s is not None:
            poll.add(stat.last_duration_s)
    return [runs, failures, retries, duration, last, success, results, poll]


def scheduler_families() -> list[Family]:
    """This moment's scheduler decision: what may be submitted, and why the rest waits."""
    plan = plan_cycle()
    backend_of = {c.campaign_id: c.backend for c in plan.inputs.input.campaigns}
    submit: dict[str, int] = defaultdict(int)
    waiting_stages: dict[str, int] = defaultdict(int)
    waiting_jobs: dict[str, int] = defaultdict(int)
    for s in plan.decision.stages.values():
        submit[backend_of.get(s.campaign_id, "")] += s.submit
        if s.reason:
            waiting_stages[s.reason] += 1
            waiting_jobs[s.reason] += max(s.ready - s.submit, 0) + s.planned
    submittable = Family(
        "opos_scheduler_submittable_jobs", "gauge", "Jobs the scheduler would submit now."
    )
    for backend, n in sorted(submit.items()):
        submittable.add(n, backend=backend)
    stages = Family("opos_scheduler_waiting_stages", "gauge", "Stages waiting, by reason.")
    jobs = Family("opos_scheduler_waiting_jobs", "gauge", "Jobs waiting, by reason.")
    for reason in sorted(waiting_stages):
        stages.add(waiting_stages[reason], reason=reason)
        jobs.add(waiting_jobs[reason], reason=reason)
    in_flight = Family(
        "opos_backend_in_flight", "gauge", "Jobs queued, running or held, by backend."
    )
    for backend, n in sorted((plan.inputs.input.in_flight_backend or {}).items()):
        in_flight.add(n, backend=backend)
    return [submittable, stages, jobs, in_flight]


def accounting_families(now: dt.datetime | None = None) -> list[Family]:
    """Core hours this month per experiment, and each current allocation with its use and
    projection (monitoring.services.accounting: two aggregate queries and the allocations)."""
    ledger = accounting.build_ledger(
        Job.objects.all(), Allocation.objects.all(), now=now, levels=("experiment",)
    )
    used = Family(
        "opos_accounting_core_hours",
        "gauge",
        "Core hours (cores x wall time) of the attempts that ended this month, by experiment "
        "and outcome (succeeded, wasted: failed, lost or cancelled; total: every attempt).",
    )
    cpu = Family(
        "opos_accounting_cpu_hours", "gauge", "CPU time consumed this month, hours, by experiment."
    )
    for row in ledger.levels["experiment"]:
        used.add(row.succeeded_core_hours, experiment=row.label, outcome="succeeded")
        used.add(row.wasted_core_hours, experiment=row.label, outcome="wasted")
        used.add(row.core_hours, experiment=row.label, outcome="total")
        cpu.add(row.cpu_hours, experiment=row.label)
    granted = Family(
        "opos_allocation_core_hours", "gauge", "Core hours granted for the current period."
    )
    spent = Family(
        "opos_allocation_used_core_hours", "gauge", "Core hours used of the current allocation."
    )
    projected = Family(
        "opos_allocation_projected_core_hours",
        "gauge",
        "Core hours at the end of the current period at the average rate so far.",
    )
    ends = Family("opos_allocation_end_timestamp_seconds", "gauge", "When the current period ends.")
    for status in ledger.allocations:
        slug = status.allocation.experiment.slug
        granted.add(status.allocation.cpu_hours, experiment=slug)
        spent.add(status.used.core_hours, experiment=slug)
        if status.projected_core_hours is not None:
            projected.add(status.projected_core_hours, experiment=slug)
        ends.add(status.period_end.timestamp(), experiment=slug)
    return [used, cpu, granted, spent, projected, ends]


def sla_families(now: dt.datetime) -> list[Family]:
    """The service-desk clock of this month's submissions: median and 90th percentile of
    each step per experiment, and how many went over the SLA target (three queries)."""
    seconds = Family(
        "opos_sla_seconds",
        "gauge",
        "Service-desk clock of this month's submitted requests, per experiment and step "
        "(quantile 0.5 and 0.9).",
    )
    over = Family(
        "opos_sla_over_target", "gauge", "This month's requests over the experiment's SLA target."
    )
    month = timezone.localtime(now).strftime("%Y-%m")
    per_experiment, _ = sla.aggregates(list(Experiment.objects.all()), now, months=1)
    for agg in per_experiment:
        if agg.month != month:
            continue
        for step, median, p90, late in agg.cells:
            if median is not None:
                seconds.add(median, experiment=agg.experiment.slug, step=step, quantile="0.5")
                seconds.add(p90, experiment=agg.experiment.slug, step=step, quantile="0.9")
            if sla.MEASURES[step][1]:
                over.add(late, experiment=agg.experiment.slug, step=step)
    return [seconds, over]


def render_metrics(now: dt.datetime | None = None) -> str:
    """The whole exposition."""
    now = now or timezone.now()
    families = [
        *jobs_families(),
        *campaign_families(),
        *execution_families(),
        *task_families(),
        *scheduler_families(),
        *accounting_families(now),
        *sla_families(now),
    ]
    snap = Family(
        "opos_snapshot_last_timestamp_seconds", "gauge", "When progress was last recorded."
    )
    snap.add(_ts(last_snapshot_at()))
    scrape = Family("opos_scrape_timestamp_seconds", "gauge", "When this exposition was made.")
    scrape.add(now.timestamp())
    families += [snap, scrape]
    lines = [line for family in families for line in family.render()]
    return "\n".join(lines) + "\n"

"""Benchmark 4: the scheduler and the expansion at production scale (not part of the tests).

    .venv/bin/python bench/bench_scheduler.py [--db bench8_sched] [--repeat 9] [--out r.json]

Creates the PostgreSQL benchmark database ``--db`` (dropped first, and again at the end
unless ``--keep``; see bench/common.py), migrates it, and prints:

1. the pure policy (``decide`` and the feasibility projection) on 500 active
   campaigns holding 100,000 planned jobs, in Python only;
2. ``plan_cycle`` on the same shape of data in the database, built with bulk
   inserts: the aggregate queries plus the policy; its floor is the same five SQL
   statements sent through raw psycopg (the database's share, no ORM, no policy);
3. the expansion of one 10,000,000-event sample into stages and planned jobs; its
   floor is a COPY of as many job rows through raw psycopg (rolled back).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import create_database, db_url, drop_database, setup_django  # noqa: E402

CAMPAIGNS = 500
JOBS = 100_000
EXPERIMENTS = 10


def build(with_in_flight: int = 5) -> None:
    """500 active campaigns (one request, three stages each) and 100,000 jobs, in bulk."""
    import datetime as dt

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from campaigns.choices import CampaignState, JobState
    from campaigns.models import Campaign, CampaignRequest, Dataset, Stage
    from campaigns.services.expansion import _insert_jobs
    from experiments.models import (
        Experiment,
        PhysicsGroup,
        ProductionCode,
        SplitRule,
        StageTemplate,
        WorkflowTemplate,
    )
    from requests_app.choices import RequestState
    from requests_app.models import ProductionRequest, Sample

    user = get_user_model().objects.create(username="bench")
    today = timezone.localdate()
    experiments = Experiment.objects.bulk_create(
        Experiment(slug=f"exp{i}", name=f"EXP{i}", job_quota=800) for i in range(EXPERIMENTS)
    )
    groups = PhysicsGroup.objects.bulk_create(
        PhysicsGroup(experiment=e, slug="g", name="G") for e in experiments
    )
    codes = ProductionCode.objects.bulk_create(
        ProductionCode(experiment=e, name="code", version="1", sha256="0" * 64, approved=True)
        for e in experiments
    )
    templates = WorkflowTemplate.objects.bulk_create(
        WorkflowTemplate(experiment=e, name="chain") for e in experiments
    )
    stage_templates = []
    for t, code in zip(templates, codes, strict=True):
        for pos, (name, split, fpj, wall) in enumerate(
            [
                ("gen", SplitRule.EVENTS, None, 1800),
                ("sim", SplitRule.FILES, 1, 3600),
                ("reco", SplitRule.FILES, 2, 2400),
            ]
        ):
            stage_templates.append(
                StageTemplate(
                    template=t,
                    position=pos,
                    name=name,
                    code=code,
                    split=split,
                    files_per_job=fpj,
                    walltime_s=wall,
                )
            )
    StageTemplate.objects.bulk_create(stage_templates)
    for k, st in enumerate(stage_templates):
        if k % 3:
            st.input_stage = stage_templates[k - 1]
    StageTemplate.objects.bulk_update(stage_templates, ["input_stage"])

    per_campaign = JOBS // CAMPAIGNS  # 200: 80 gen + 80 sim + 40 reco
    gen_jobs = per_campaign * 2 // 5
    campaigns = Campaign.objects.bulk_create(
        Campaign(
            experiment=experiments[i % EXPERIMENTS],
            name=f"round-{i}",
            deadline=today + dt.timedelta(days=3 + i % 40),
            priority=["low", "normal", "high", "critical"][i % 4],
            state=CampaignState.ACTIVE,
            throttle=None if i % 3 else 50,
            backend="slurm" if i % 2 else "htcondor",
        )
        for i in range(CAMPAIGNS)
    )
    requests = ProductionRequest.objects.bulk_create(
        ProductionRequest(
            number=f"REQ-BENCH-{i:05d}",
            ticket=f"RITM{i:07d}",
            experiment=c.experiment,
            physics_group=groups[i % EXPERIMENTS],
            requester=user,
            title=f"bench {i}",
            deadline=c.deadline,
            state=RequestState.SCHEDULED,
        )
        for i, c in enumerate(campaigns)
    )
    samples = Sample.objects.bulk_create(
        Sample(
            request=r,
            name="s",
            template=templates[i % EXPERIMENTS],
            events=gen_jobs * 100,
            events_per_job=100,
            output_dataset=f"bench:{i}",
        )
        for i, r in enumerate(requests)
    )
    CampaignRequest.objects.bulk_create(
        CampaignRequest(campaign=c, request=r) for c, r in zip(campaigns, requests, strict=True)
    )
    datasets = Dataset.objects.bulk_create(
        Dataset(experiment=c.experiment, campaign=c, name=f"bench:{i}.{k}")
        for i, c in enumerate(campaigns)
        for k in range(3)
    )
    counts = [gen_jobs, gen_jobs, gen_jobs // 2]
    stages = []
    for i, (c, r, s) in enumerate(zip(campaigns, requests, samples, strict=True)):
        for k in range(3):
            st = stage_templates[(i % EXPERIMENTS) * 3 + k]
            stages.append(
                Stage(
                    campaign=c,
                    request=r,
                    sample=s,
                    template_stage=st,
                    position=k,
                    name=st.name,
                    code_id=st.code_id,
                    code_sha256="0" * 64,
                    code_location="/bench",
                    walltime_s=st.walltime_s,
                    split=st.split,
                    files_per_job=st.files_per_job,
                    output_dataset=datasets[i * 3 + k],
                    jobs_total=counts[k],
                )
            )
    # Waves: each stage needs the id of the one it reads.
    for k in range(3):
        wave = stages[k::3]
        if k:
            for prev, stage in zip(stages[k - 1 :: 3], wave, strict=True):
                stage.input_stage = prev
        Stage.objects.bulk_create(wave)
    now = timezone.now()
    since = connection.ops.adapt_datetimefield_value(now) if connection.vendor == "sqlite" else now
    files = "[]"
    rows = []
    for i, stage in enumerate(stages):
        k = i % 3
        for index in range(counts[k]):
            if k == 0:
                state = JobState.RUNNING if index < with_in_flight else JobState.READY
            else:
                state = JobState.PLANNED
            rows.append(
                (
                    stage.pk,
                    index,
                    state,
                    since,
                    index * 100,
                    100,
                    None if not k else index,
                    1,
                    files,
                )
            )
    for start in range(0, len(rows), 5000):
        _insert_jobs(rows[start : start + 5000])
    # Running jobs carry their backend, as execution records it.
    from campaigns.models import Job

    for backend in ("slurm", "htcondor"):
        Job.objects.filter(state=JobState.RUNNING, stage__campaign__backend=backend).update(
            backend=backend
        )
    # The rows went in behind the services' back: the stage counters the scheduler reads
    # are rebuilt as the reconciler would.
    from campaigns.services import recount_stages

    recount_stages([stage.pk for stage in stages])


def bench_expansion(events: int, per_job: int) -> tuple[float, int]:
    """Schedule one request with a ``events``-event sample; seconds and jobs planned."""
    import datetime as dt

    from django.utils import timezone

    from campaigns.models import Campaign
    from campaigns.services import schedule_requests
    from experiments.models import Experiment, PhysicsGroup, WorkflowTemplate
    from experiments.services.roles import grant_role
    from requests_app.choices import RequestState
    from requests_app.models import ProductionRequest, Sample

    operator = grant_role("bench-operator", "operator").user
    owner = grant_role(f"bench-owner-{events}-{per_job}", "liaison", "exp0").user
    experiment = Experiment.objects.get(slug="exp0")
    template = WorkflowTemplate.objects.get(experiment=experiment, name="chain")
    for stage in template.stages.select_related("code"):
        stage.code.owners.add(owner)
    deadline = timezone.localdate() + dt.timedelta(days=60)
    campaign = Campaign.objects.create(
        experiment=experiment, name=f"big-{events}-{per_job}", deadline=deadline, backend="slurm"
    )
    request = ProductionRequest.objects.create(
        number=f"REQ-BIG-{per_job}",
        ticket="RITM9999999",
        experiment=experiment,
        physics_group=PhysicsGroup.objects.get(experiment=experiment),
        requester=operator,
        title="ten million events",
        deadline=deadline,
        state=RequestState.APPROVED,
    )
    Sample.objects.create(
        request=request,
        name="big",
        template=template,
        events=events,
        events_per_job=per_job,
        output_dataset=f"bench:big:{events}:{per_job}",
    )
    start = time.perf_counter()
    result = schedule_requests(campaign, [request.pk], operator)
    return time.perf_counter() - start, result.jobs


def raw_floor_cycle(statements: list[str], repeat: int) -> dict:
    """The five input queries of ``load_inputs`` as raw SQL through psycopg, rows fetched."""
    import psycopg

    times = []
    with psycopg.connect(db_url(ARGS.db)) as conn:
        for _ in range(repeat):
            start = time.perf_counter()
            for sql in statements:
                conn.execute(sql.replace("%", "%%")).fetchall()
            times.append(time.perf_counter() - start)
            conn.rollback()
    return {"median_s": statistics.median(times), "best_s": min(times)}


def raw_floor_copy(jobs: int) -> float:
    """COPY ``jobs`` planned job rows into the job table through psycopg; rolled back."""
    import psycopg

    with psycopg.connect(db_url(ARGS.db)) as conn:
        stage_id = conn.execute("SELECT min(id) FROM campaigns_stage").fetchone()[0]
        start = time.perf_counter()
        with conn.cursor().copy(
            "COPY campaigns_job (stage_id, index, attempt, state, state_since, events_first, "
            "events, input_first, input_count, input_files, backend, batch_id, failure_class, "
            "failure_reason, workdir, outcome, host) FROM STDIN"
        ) as copy:
            now = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())
            for i in range(jobs):
                copy.write_row(
                    (
                        stage_id,
                        10_000_000 + i,
                        1,
                        "planned",
                        now,
                        i * 500,
                        500,
                        None,
                        0,
                        "[]",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                    )
                )
        seconds = time.perf_counter() - start
        conn.rollback()
    return seconds


def timed(fn, repeat: int) -> tuple[dict, object]:
    """Median and best seconds of ``repeat`` runs, and the last result.

    The best run is kept too: on a shared machine the median carries the neighbours'
    load, the best is closer to the code's own cost.
    """
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "best_s": min(times)}, result


def fmt(t: dict) -> str:
    return f"{t['median_s'] * 1000:7.1f} ms (best {t['best_s'] * 1000:.1f})"


def measure() -> dict:
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from campaigns import conf
    from campaigns.scheduler import decide, project
    from campaigns.services.planning import load_inputs, plan_cycle

    call_command("migrate", verbosity=0)
    # The expansion of 10M events at 500 per job plans 50,000 jobs in three stages.
    settings.OPOS_MAX_JOBS_PER_SAMPLE = max(conf.max_jobs_per_sample(), 100_000)
    settings.OPOS_MAX_JOBS_PER_REQUEST = max(conf.max_jobs_per_sample(), 1_000_000)
    out: dict = {"campaigns": CAMPAIGNS, "jobs": JOBS}
    start = time.perf_counter()
    build()
    out["build_s"] = time.perf_counter() - start
    print(f"built {CAMPAIGNS} active campaigns, {JOBS:,} jobs in bulk: {out['build_s']:.1f} s")

    inputs = load_inputs()
    campaigns = inputs.input.campaigns
    stages = sum(len(c.stages) for c in campaigns)
    jobs = sum(s.remaining for c in campaigns for s in c.stages)
    print(f"policy input: {len(campaigns)} campaigns, {stages} stages, {jobs:,} jobs")

    repeat = ARGS.repeat
    out["decide"], decision = timed(
        lambda: decide(inputs.input, "slack", conf.priority_margin_s()), repeat
    )
    granted = sum(n for _s, n in decision.submissions())
    print(
        f"1. pure policy, decide():        {fmt(out['decide'])}  "
        f"({granted} jobs granted, {len(decision.submissions())} stages submit)"
    )
    out["project"], _ = timed(
        lambda: project(inputs.input, "slack", conf.priority_margin_s()), repeat
    )
    print(f"   feasibility projection:       {fmt(out['project'])}")

    out["load_inputs"], _ = timed(load_inputs, repeat)
    out["plan_cycle"], _plan = timed(plan_cycle, repeat)
    with CaptureQueriesContext(connection) as queries:
        load_inputs()
    statements = [q["sql"] for q in queries.captured_queries]
    out["plan_cycle_floor"] = raw_floor_cycle(statements, repeat)
    out["plan_cycle_floor"]["queries"] = len(statements)
    print(f"2. plan_cycle() against the DB:  {fmt(out['plan_cycle'])}")
    print(f"   of which the input queries:   {fmt(out['load_inputs'])}")
    print(f"   floor, {len(statements)} raw SQL queries:   {fmt(out['plan_cycle_floor'])}")

    out["expansion"] = []
    for events, per_job in ((ARGS.events, 1000), (ARGS.events, 500)):
        seconds, planned = bench_expansion(events, per_job)
        floor = raw_floor_copy(planned)
        out["expansion"].append(
            {
                "events": events,
                "per_job": per_job,
                "jobs": planned,
                "seconds": seconds,
                "floor_copy_s": floor,
            }
        )
        print(
            f"3. expansion of {events:,} events at {per_job}/job: {seconds:6.2f} s  "
            f"({planned:,} jobs in 3 stages, {planned / seconds:,.0f} jobs/s; "
            f"floor, COPY of {planned:,} rows: {floor:.2f} s)"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    global ARGS, CAMPAIGNS, JOBS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="bench8_sched", help="benchmark database (bench*)")
    parser.add_argument("--repeat", type=int, default=9, help="runs per timing (median)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--campaigns", type=int, default=CAMPAIGNS, help="active campaigns")
    parser.add_argument("--jobs", type=int, default=JOBS, help="jobs over those campaigns")
    parser.add_argument("--events", type=int, default=10_000_000, help="events to expand")
    parser.add_argument("--out", help="write the figures here as JSON")
    ARGS = parser.parse_args(argv)
    CAMPAIGNS, JOBS = ARGS.campaigns, ARGS.jobs
    create_database(ARGS.db)
    setup_django(ARGS.db)
    try:
        figures = measure()
    finally:
        from django.db import connections

        connections.close_all()
        if not ARGS.keep:
            drop_database(ARGS.db)
    if ARGS.out:
        Path(ARGS.out).write_text(json.dumps(figures, indent=1, default=str))


ARGS: argparse.Namespace

if __name__ == "__main__":
    main()

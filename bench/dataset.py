"""The benchmark database's structure: people, intake, campaigns, requests, samples, stages.

``bench/generate.py`` is the command; this module plans and writes the structure with
COPY (``Structure``), ``bench/activity.py`` adds the jobs and their history on top of it.
Primary keys are handed out here (``Ids``), so rows can point at each other before they
exist: Django's foreign keys on PostgreSQL are checked at commit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

BENCH_USER = "bench-op"
BENCH_PASSWORD = "bench-operator-pass"  # noqa: S105 - a benchmark database's demo users
REQUIRED = object()

# Campaign states by campaign index modulo 20: 60% active, 15% completed, 10% paused,
# 10% planned (not launched), 5% cancelled.
CAMPAIGN_CYCLE = ["active"] * 12 + ["completed"] * 3 + ["paused"] * 2 + ["planned"] * 2
CAMPAIGN_CYCLE += ["cancelled"]
# Requests not scheduled into a campaign, by request index modulo 20.
UNLINKED_CYCLE = (
    ["draft"] * 2
    + ["submitted"] * 4
    + ["needs_info"] * 2
    + ["approved"] * 5
    + ["rejected"] * 2
    + ["closed"] * 3
    + ["cancelled"] * 2
)
LINKED_FRACTION = 0.6
RETRY_FRACTION = 0.015  # rows that are failed attempts followed by a retry
FAILURES = [  # (state, failure class, exit code, reason), by failed row modulo 20
    *[("failed", "out_of_memory", 137, "OUT_OF_MEMORY")] * 8,
    *[("failed", "walltime", 143, "TIMEOUT")] * 5,
    *[("lost", "lost", None, "no longer listed by Slurm")] * 3,
    *[("failed", "other", 1, "exit code 1")] * 4,
]
ACTIVE_MIX = ["queued"] * 9 + ["running"] * 10 + ["held"]  # by active row modulo 20
ARRAY = 1000  # jobs per submission (array)
STAGES = [  # name, split, files per job, walltime
    ("gen", "events", None, 1800),
    ("sim", "files", 1, 3600),
    ("reco", "files", 2, 2400),
]


# --- COPY with every column filled --------------------------------------------------------------


class Table:
    """One table's columns, with the value each gets when a row does not name it.

    Django keeps defaults in Python, not in the database, so a COPY must give every
    NOT NULL column: fields with a default get it, nullable ones NULL, auto_now ones
    the load time, text fields "", and the rest must be given.
    """

    def __init__(self, model: Any, now: dt.datetime) -> None:
        from django.db import connection
        from django.db.models import JSONField

        self.model = model
        self.name = model._meta.db_table
        fields = list(model._meta.concrete_fields)
        self.attnames = [f.attname for f in fields]
        self.columns = [f.column for f in fields]
        self.defaults: list[Any] = []
        for f in fields:
            if f.has_default():
                value = f.get_default()
                value = json.dumps(value) if isinstance(f, JSONField) else value
            elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                value = now
            elif f.null:
                value = None
            elif f.empty_strings_allowed and not f.primary_key:
                value = ""
            else:
                value = REQUIRED
            self.defaults.append(value)
        self.json = {f.attname for f in fields if isinstance(f, JSONField)}
        quote = connection.ops.quote_name
        self.copy_sql = (
            f"COPY {quote(self.name)} ({', '.join(quote(c) for c in self.columns)}) FROM STDIN"
        )

    def row(self, values: dict[str, Any]) -> tuple:
        out = []
        for name, default in zip(self.attnames, self.defaults, strict=True):
            if name in values:
                value = values[name]
                if name in self.json and not isinstance(value, str):
                    value = json.dumps(value)
            elif default is REQUIRED:
                raise ValueError(f"{self.name}.{name} needs a value")
            else:
                value = default
            out.append(value)
        return tuple(out)


def copy(cursor: Any, table: Table, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with cursor.copy(table.copy_sql) as stream:
        for values in rows:
            stream.write_row(table.row(values))
            n += 1
    return n


# --- the shape of the data ----------------------------------------------------------------------


@dataclass
class StagePlan:
    id: int
    campaign: int
    request: int
    sample: int
    position: int
    name: str
    jobs: int  # indexes
    epj: int
    dataset: int
    code: int
    counts: Counter = field(default_factory=Counter)
    retried: Counter = field(default_factory=Counter)  # attempts a retry replaced, by state
    events_done: int = 0
    progress_at: dt.datetime | None = None
    input_stage: int | None = None
    split: str = "events"
    files_per_job: int | None = None
    walltime: int = 3600


@dataclass
class CampaignPlan:
    id: int
    index: int
    experiment: int
    state: str
    backend: str
    launched: dt.datetime | None
    ended: dt.datetime | None
    progress: float
    requests: list[int] = field(default_factory=list)


class Ids:
    """Primary keys handed out here, so rows can point at each other before they exist
    (Django's foreign keys on PostgreSQL are checked at commit)."""

    def __init__(self) -> None:
        self.last: dict[str, int] = defaultdict(int)

    def next(self, table: str) -> int:
        self.last[table] += 1
        return self.last[table]


def shape(x: float) -> float:
    """Cumulative progress at fraction ``x`` of the elapsed time: a day's ramp, then steady."""
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x) * 0.3 + 0.7 * x


class Structure:
    """Writes everything but the jobs and their history (see ``activity.Generator``)."""

    def __init__(self, args: argparse.Namespace) -> None:
        from django.utils import timezone

        self.args = args
        self.rng = random.Random(args.seed)
        self.now = timezone.now().replace(microsecond=0)
        self.today = self.now.date()
        self.ids = Ids()
        self.counts: dict[str, int] = {}

    # Each step writes one group of tables; run() calls them in order in one transaction.

    def run(self) -> dict[str, int]:
        from django.contrib.auth.hashers import make_password
        from django.db import connection, transaction

        self.password = make_password(BENCH_PASSWORD)
        with transaction.atomic(), connection.cursor() as django_cursor:
            cursor = django_cursor.cursor  # psycopg's own, for COPY
            for step in (
                self.people,
                self.intake,
                self.plan,
                self.jobs,
                self.stages,
                self.catalogue,
                self.history,
            ):
                start = time.perf_counter()
                step(cursor)
                print(f"  {step.__name__:10} {time.perf_counter() - start:6.1f} s", flush=True)
        self.reset_sequences()
        return self.counts

    def _copy(self, cursor: Any, model: Any, rows: Iterable[dict[str, Any]]) -> None:
        table = Table(model, self.now)
        self.counts[table.name] = self.counts.get(table.name, 0) + copy(cursor, table, rows)

    # --- people and experiments --------------------------------------------------------------

    def people(self, cursor: Any) -> None:
        from django.contrib.auth import get_user_model

        from experiments.models import Experiment, GlobalRole, Membership, PhysicsGroup

        user_model = get_user_model()
        users, roles, members = [], [], []
        self.operators = []
        for k in range(5):
            uid = self.ids.next("user")
            name = BENCH_USER if k == 0 else f"bench-op{k}"
            users.append(self._user(uid, name, staff=k == 0))
            roles.append({"id": self.ids.next("role"), "user_id": uid, "role": "operator"})
            self.operators.append(uid)
        self.experiments, self.liaison, self.groups = [], {}, {}
        self.slug: dict[int, str] = {}
        exps, groups = [], []
        for e in range(self.args.experiments):
            eid = self.ids.next("experiment")
            self.experiments.append(eid)
            self.slug[eid] = f"exp{e:02d}"
            exps.append(
                {
                    "id": eid,
                    "slug": f"exp{e:02d}",
                    "name": f"EXP-{e:02d}",
                    "description": "Benchmark experiment.",
                    "sla_accepted_on": self.today - dt.timedelta(days=400),
                    "sla_reference": f"SLA-{e:04d}",
                    "default_backend": "htcondor" if e % 5 == 4 else "slurm",
                    "job_quota": 20000,
                }
            )
            self.groups[eid] = []
            for slug in ("osc", "sn", "pdk", "cosmo"):
                gid = self.ids.next("group")
                self.groups[eid].append(gid)
                groups.append({"id": gid, "experiment_id": eid, "slug": slug, "name": slug.upper()})
            for k, role in enumerate(("liaison", "physicist", "physicist")):
                uid = self.ids.next("user")
                users.append(self._user(uid, f"exp{e:02d}-{role}{k}"))
                members.append(
                    {
                        "id": self.ids.next("member"),
                        "user_id": uid,
                        "experiment_id": eid,
                        "role": role,
                    }
                )
                if role == "liaison":
                    self.liaison[eid] = uid
        self._copy(cursor, user_model, users)
        self._copy(cursor, GlobalRole, roles)
        self._copy(cursor, Experiment, exps)
        self._copy(cursor, PhysicsGroup, groups)
        self._copy(cursor, Membership, members)

    def _user(self, uid: int, username: str, staff: bool = False) -> dict[str, Any]:
        return {
            "id": uid,
            "username": username,
            "password": self.password,
            "email": f"{username}@example.org",
            "is_staff": staff,
            "is_superuser": False,
            "is_active": True,
            "date_joined": self.now - dt.timedelta(days=500),
        }

    def intake(self, cursor: Any) -> None:
        """Training records, production code, templates (one gen-sim-reco chain each)."""
        from experiments.models import (
            ProductionCode,
            StageTemplate,
            TrainingRecord,
            WorkflowTemplate,
        )

        trainings, attendees, codes, owners, templates, stages = [], [], [], [], [], []
        self.codes: dict[int, list[int]] = {}
        self.templates: dict[int, int] = {}
        self.stage_templates: dict[int, list[int]] = {}
        attend = TrainingRecord.attendees.through
        own = ProductionCode.owners.through
        for eid in self.experiments:
            tid = self.ids.next("training")
            trainings.append(
                {
                    "id": tid,
                    "experiment_id": eid,
                    "held_on": self.today - dt.timedelta(days=300),
                    "topics": ["submission", "monitoring", "data_handling"],
                    "recorded_by_id": self.operators[0],
                }
            )
            for uid in self.operators[:2]:
                attendees.append(
                    {"id": self.ids.next("attend"), "trainingrecord_id": tid, "user_id": uid}
                )
            self.codes[eid] = []
            for name, *_ in STAGES:
                cid = self.ids.next("code")
                self.codes[eid].append(cid)
                codes.append(
                    {
                        "id": cid,
                        "experiment_id": eid,
                        "name": name,
                        "version": "v1.0",
                        "location": f"/cvmfs/exp{eid}/prod/{name}.py",
                        "sha256": f"{cid:064x}",
                        "approved": True,
                        "approved_by_id": self.operators[0],
                        "approved_at": self.now - dt.timedelta(days=200),
                    }
                )
                owners.append(
                    {
                        "id": self.ids.next("owner"),
                        "productioncode_id": cid,
                        "user_id": self.liaison[eid],
                    }
                )
            wid = self.ids.next("template")
            self.templates[eid] = wid
            templates.append({"id": wid, "experiment_id": eid, "name": "gen-sim-reco"})
            self.stage_templates[eid] = []
            for pos, (name, split, fpj, wall) in enumerate(STAGES):
                sid = self.ids.next("stagetemplate")
                self.stage_templates[eid].append(sid)
                stages.append(
                    {
                        "id": sid,
                        "template_id": wid,
                        "position": pos,
                        "name": name,
                        "code_id": self.codes[eid][pos],
                        "split": split,
                        "files_per_job": fpj,
                        "walltime_s": wall,
                        "input_stage_id": sid - 1 if pos else None,
                    }
                )
        self._copy(cursor, TrainingRecord, trainings)
        self._copy(cursor, attend, attendees)
        self._copy(cursor, ProductionCode, codes)
        self._copy(cursor, own, owners)
        self._copy(cursor, WorkflowTemplate, templates)
        self._copy(cursor, StageTemplate, stages)

    # --- campaigns, requests, samples, stages --------------------------------------------------

    def plan(self, cursor: Any) -> None:
        from campaigns.models import Campaign, CampaignEvent, CampaignRequest, Dataset
        from requests_app.models import (
            Comment,
            ProductionRequest,
            RequestCounter,
            Sample,
            Transition,
        )

        rng = self.rng
        self.campaigns: list[CampaignPlan] = []
        campaigns, events = [], []
        for i in range(self.args.campaigns):
            eid = self.experiments[i % len(self.experiments)]
            state = CAMPAIGN_CYCLE[i % len(CAMPAIGN_CYCLE)]
            age = dt.timedelta(days=3 + (i * 7) % 12, hours=i % 24)
            launched = None if state == "planned" else self.now - age
            ended = None
            if state == "completed":
                launched = self.now - age - dt.timedelta(days=14)
                ended = launched + dt.timedelta(days=10 + i % 4)
            elif state == "cancelled":
                ended = launched + dt.timedelta(days=2)
            plan = CampaignPlan(
                id=self.ids.next("campaign"),
                index=i,
                experiment=eid,
                state=state,
                backend="htcondor" if (eid - 1) % 5 == 4 else "slurm",
                launched=launched,
                ended=ended,
                progress=0.1 + 0.8 * rng.random(),
            )
            self.campaigns.append(plan)
            created = (launched or self.now - dt.timedelta(days=1)) - dt.timedelta(days=2)
            deadline = (launched or self.now).date() + dt.timedelta(days=20 + (i * 11) % 25)
            campaigns.append(
                {
                    "id": plan.id,
                    "experiment_id": eid,
                    "name": f"round-{i:03d}",
                    "description": "Production round (benchmark).",
                    "deadline": deadline,
                    "priority": ["normal", "high", "low", "normal", "critical"][i % 5],
                    "state": state,
                    "throttle": 500 if i % 4 == 3 else None,
                    "backend": plan.backend,
                    "created_by_id": self.operators[0],
                    "created": created,
                    "updated": ended or launched or created,
                    "launched_at": launched,
                    "completed_at": ended if state == "completed" else None,
                    "cancelled_at": ended if state == "cancelled" else None,
                }
            )
            events.append(self._event(plan.id, "created", created))
            if launched:
                events.append(self._event(plan.id, "launch", launched))
            if state in ("completed", "cancelled", "paused"):
                kind = {"completed": "complete", "cancelled": "cancel", "paused": "pause"}[state]
                events.append(self._event(plan.id, kind, ended or self.now - dt.timedelta(hours=5)))
        self._copy(cursor, Campaign, campaigns)
        self._copy(cursor, CampaignEvent, events)

        n_linked = round(self.args.requests * LINKED_FRACTION)
        year = self.today.year
        requests, links, samples, transitions, comments = [], [], [], [], []
        self.samples: list[
            tuple[int, int, CampaignPlan, int]
        ] = []  # sample, request, campaign, epj
        self.sample_events: dict[int, int] = {}
        numbered: dict[int, int] = dict.fromkeys(self.experiments, 0)  # per experiment
        weights: list[float] = []
        for j in range(self.args.requests):
            rid = self.ids.next("request")
            campaign = self.campaigns[j % len(self.campaigns)] if j < n_linked else None
            if campaign:
                eid = campaign.experiment
                state = {
                    "active": "on_hold" if j % 10 == 7 else "in_production",
                    "paused": "in_production",
                    "completed": "completed",
                    "planned": "scheduled",
                    "cancelled": "cancelled",
                }[campaign.state]
                campaign.requests.append(rid)
                created = (campaign.launched or self.now) - dt.timedelta(days=5)
                deadline = (campaign.launched or self.now).date() + dt.timedelta(days=25 + j % 20)
            else:
                eid = self.experiments[j % len(self.experiments)]
                state = UNLINKED_CYCLE[j % len(UNLINKED_CYCLE)]
                created = self.now - dt.timedelta(days=1 + j % 60, hours=j % 24)
                deadline = self.today + dt.timedelta(days=10 + j % 90)
            numbered[eid] += 1
            number = f"{self.slug[eid].upper()}-{year}-{numbered[eid]:05d}"
            held = state == "on_hold"
            requests.append(
                {
                    "id": rid,
                    "number": number,
                    "ticket": f"RITM{1_000_000 + j:07d}",
                    "experiment_id": eid,
                    "physics_group_id": self.groups[eid][j % 4],
                    "requester_id": self.liaison[eid],
                    "title": f"{['Oscillation', 'Supernova', 'Proton decay', 'Cosmogenic'][j % 4]}"
                    f" sample {j}",
                    "description": "Needed for the collaboration meeting.",
                    "deadline": deadline,
                    "priority": ["normal", "high", "low", "normal", "critical"][j % 5],
                    "state": state,
                    "assignee_id": None if state in ("draft", "submitted") else self.operators[0],
                    "held_from": "in_production" if held else "",
                    "hold_started": self.now - dt.timedelta(hours=30) if held else None,
                    "hold_reason": "Account permission problem at the site." if held else "",
                    "hold_seconds": 3600 * (j % 5),
                    "version": 3,
                    "submitted": None if state == "draft" else created + dt.timedelta(hours=1),
                    "created": created,
                    "updated": created + dt.timedelta(days=1),
                }
            )
            transitions += self._transitions(rid, state, created)
            if j % 4 == 0:
                comments.append(
                    {
                        "id": self.ids.next("comment"),
                        "request_id": rid,
                        "author_id": self.liaison[eid],
                        "body": "Please prioritise the first sample.",
                        "created": created + dt.timedelta(hours=3),
                    }
                )
            if campaign:
                links.append(
                    {
                        "id": self.ids.next("link"),
                        "campaign_id": campaign.id,
                        "request_id": rid,
                        "added_by_id": self.operators[0],
                        "added": created + dt.timedelta(days=2),
                    }
                )
            for k in range(2 if j % 3 == 0 else 1):
                sid = self.ids.next("sample")
                epj = [100, 500, 1000][(j + k) % 3]
                if campaign:
                    self.samples.append((sid, rid, campaign, epj))
                    weights.append(0.3 + 2.7 * rng.random())
                samples.append(
                    {
                        "id": sid,
                        "request_id": rid,
                        "name": f"sample-{k}",
                        "template_id": self.templates[eid],
                        "events": 0,  # filled below from the jobs
                        "events_per_job": epj,
                        "output_dataset": f"{self.slug[eid]}:{number}:sample-{k}",
                    }
                )
        # Jobs per sample: gen g, sim g, reco ceil(g / 2); the budget is spread by weight
        # with stochastic rounding, so every size keeps the same structure.
        budget = self.args.jobs * (1 - RETRY_FRACTION)
        total_w = sum(weights) or 1.0
        self.gen_jobs: dict[int, int] = {}
        for (sid, _rid, _c, _epj), w in zip(self.samples, weights, strict=True):
            exact = budget * w / total_w / 2.5
            g = int(exact) + (1 if rng.random() < exact - int(exact) else 0)
            self.gen_jobs[sid] = g

        def indexes(g: int) -> int:
            return 2 * g + math.ceil(g / 2)

        # Rounding (and reco's ceil) can overshoot: take jobs back from the largest samples,
        # so that the failed attempts make up exactly the rest of --jobs.
        total = sum(indexes(g) for g in self.gen_jobs.values())
        by_size = sorted(self.gen_jobs, key=self.gen_jobs.get, reverse=True)
        k = 0
        while total > budget and by_size:
            sid = by_size[k % len(by_size)]
            if self.gen_jobs[sid]:
                total -= indexes(self.gen_jobs[sid]) - indexes(self.gen_jobs[sid] - 1)
                self.gen_jobs[sid] -= 1
            k += 1
        for sid, _rid, _c, epj in self.samples:
            self.sample_events[sid] = max(self.gen_jobs[sid], 1) * epj
        for row in samples:
            row["events"] = self.sample_events.get(row["id"], 100_000)
        self._copy(cursor, ProductionRequest, requests)
        self._copy(cursor, CampaignRequest, links)
        self._copy(cursor, Sample, samples)
        self._copy(cursor, Transition, transitions)
        self._copy(cursor, Comment, comments)
        counters = [
            {"id": n, "experiment_id": eid, "year": year, "last": last}
            for n, (eid, last) in enumerate(numbered.items(), start=1)
        ]
        self._copy(cursor, RequestCounter, counters)

        # Stages and their output datasets.
        self.stage_plans: list[StagePlan] = []
        datasets = []
        for sid, rid, campaign, epj in self.samples:
            g = self.gen_jobs[sid]
            previous = None
            for pos, (name, split, fpj, wall) in enumerate(STAGES):
                did = self.ids.next("dataset")
                n = g if pos < 2 else math.ceil(g / 2)
                plan = StagePlan(
                    id=self.ids.next("stage"),
                    campaign=campaign.id,
                    request=rid,
                    sample=sid,
                    position=pos,
                    name=name,
                    jobs=n,
                    epj=epj,
                    dataset=did,
                    code=self.codes[campaign.experiment][pos],
                    input_stage=previous,
                    split=split,
                    files_per_job=fpj,
                    walltime=wall,
                )
                previous = plan.id
                self.stage_plans.append(plan)
                datasets.append(
                    {
                        "id": did,
                        "experiment_id": campaign.experiment,
                        "name": f"exp{campaign.experiment}:c{campaign.id}:s{sid}:{name}",
                        "campaign_id": campaign.id,
                        "created": campaign.launched or self.now,
                    }
                )
        self._copy(cursor, Dataset, datasets)

    def _event(self, campaign_id: int, kind: str, at: dt.datetime) -> dict[str, Any]:
        return {
            "id": self.ids.next("campaignevent"),
            "campaign_id": campaign_id,
            "kind": kind,
            "actor_id": self.operators[0],
            "created": at,
        }

    def _transitions(self, rid: int, state: str, created: dt.datetime) -> list[dict[str, Any]]:
        path = {
            "draft": [],
            "submitted": [("submit", "draft", "submitted")],
            "needs_info": [
                ("submit", "draft", "submitted"),
                ("request_info", "submitted", "needs_info"),
            ],
            "rejected": [("submit", "draft", "submitted"), ("reject", "submitted", "rejected")],
            "approved": [("submit", "draft", "submitted"), ("approve", "submitted", "approved")],
        }
        scheduled = [*path["approved"], ("schedule", "approved", "scheduled")]
        running = [*scheduled, ("start", "scheduled", "in_production")]
        path |= {
            "scheduled": scheduled,
            "in_production": running,
            "on_hold": [*running, ("hold", "in_production", "on_hold")],
            "completed": [*running, ("complete", "in_production", "completed")],
            "closed": [
                *running,
                ("complete", "in_production", "completed"),
                ("close", "completed", "closed"),
            ],
            "cancelled": [*path["approved"], ("cancel", "approved", "cancelled")],
        }
        return [
            {
                "id": self.ids.next("transition"),
                "request_id": rid,
                "action": action,
                "from_state": source,
                "to_state": target,
                "actor_id": self.operators[0],
                "note": "Blocked: account permission problem." if action == "hold" else "",
                "created": created + dt.timedelta(hours=6 * k + 1),
            }
            for k, (action, source, target) in enumerate(path[state])
        ]

    # --- jobs ------------------------------------------------------------------------------

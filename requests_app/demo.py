"""Demo data of the intake side: DUNE's MCC5.0 round and a second experiment.

Idempotent: every object is found by its natural key and brought to the
same values, so running it twice gives the same data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from experiments.choices import CodeKind, TrainingTopic
from experiments.models import (
    Experiment,
    PhysicsGroup,
    ProductionCode,
    StageTemplate,
    TrainingRecord,
    WorkflowTemplate,
)
from experiments.models.experiments import configured_default_backend
from experiments.services.roles import grant_role

from .choices import Priority, RequestState
from .models import ProductionRequest
from .services.requests import create_request
from .services.transitions import transition

DEMO_WORKFLOW_DIR = Path(settings.BASE_DIR) / "demo" / "workflow"

# username, role, experiment, password: printed by seed_demo, demo only.
DEMO_USERS = [
    ("admin", "admin", None, "admin-demo-pass"),
    ("olivia", "operator", None, "operator-demo-pass"),
    ("oscar", "operator", None, "operator-demo-pass"),
    ("liam", "liaison", "dune", "liaison-demo-pass"),
    ("phoebe", "physicist", "dune", "physicist-demo-pass"),
    ("sara", "liaison", "sbnd", "liaison-demo-pass"),
    ("paul", "physicist", "sbnd", "physicist-demo-pass"),
]

EXPERIMENTS = {
    "dune": {
        "name": "DUNE",
        "description": "Deep Underground Neutrino Experiment",
        "groups": [
            ("oscillations", "Oscillations"),
            ("supernova", "Supernova"),
            ("proton-decay", "Proton decay"),
            ("cosmogenics", "Cosmogenics"),
        ],
        "sla": (dt.date(2026, 9, 1), "OPOS-SLA-DUNE-2026"),
        "quota": 400,
    },
    "sbnd": {
        "name": "SBND",
        "description": "Short-Baseline Near Detector",
        "groups": [("cross-sections", "Cross sections"), ("bsm", "Beyond the Standard Model")],
        "sla": (None, ""),
        "quota": 200,
    },
}

STAGES = [
    # name, script, parameters spec, cores, memory, walltime, split, files_per_job
    (
        "generation",
        "generate.py",
        {
            "seed": {"type": "int", "default": 1, "min": 1, "max": 2**31 - 1},
            "energy_gev": {"type": "float", "default": 2.5, "min": 0.1, "max": 100.0},
        },
        1,
        1000,
        60,
        "events",
        None,
    ),
    (
        "simulation",
        "simulate.py",
        {"resolution": {"type": "float", "default": 0.1, "min": 0.0, "max": 1.0}},
        1,
        2000,
        120,
        "files",
        1,
    ),
    (
        "reconstruction",
        "reconstruct.py",
        {
            "threshold_gev": {"type": "float", "default": 0.05, "min": 0.0, "max": 10.0},
            "reco_version": {"type": "str", "default": "v1", "choices": ["v1", "v2"]},
        },
        1,
        2000,
        90,
        "files",
        1,
    ),
]

DUNE_REQUESTS = [
    # group, ticket, title, events, events per job, priority, days to deadline, state
    (
        "oscillations",
        "RITM0012001",
        "MCC5.0 beam nu_mu CC sample",
        20000,
        2000,
        Priority.HIGH,
        9,
        RequestState.APPROVED,
    ),
    (
        "supernova",
        "RITM0012002",
        "MCC5.0 supernova burst sample",
        5000,
        500,
        Priority.CRITICAL,
        5,
        RequestState.SUBMITTED,
    ),
    (
        "proton-decay",
        "RITM0012003",
        "MCC5.0 p -> K+ nu sample",
        10000,
        1000,
        Priority.NORMAL,
        14,
        RequestState.SUBMITTED,
    ),
    (
        "cosmogenics",
        "RITM0012004",
        "MCC5.0 cosmic background",
        8000,
        1000,
        Priority.LOW,
        21,
        RequestState.DRAFT,
    ),
]


@dataclass
class SeedReport:
    users: list[tuple[str, str, str | None, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _upsert(model, lookup: dict, values: dict):
    obj, created = model.objects.get_or_create(**lookup, defaults=values)
    if not created:
        changed = [k for k, v in values.items() if getattr(obj, k) != v]
        for k in changed:
            setattr(obj, k, values[k])
        if changed:
            obj.save(update_fields=changed)
    return obj


@transaction.atomic
def seed(report: SeedReport) -> None:
    """Create or refresh the intake demo data."""
    experiments = {}
    for slug, spec in EXPERIMENTS.items():
        accepted_on, reference = spec["sla"]
        exp = _upsert(
            Experiment,
            {"slug": slug},
            {
                "name": spec["name"],
                "description": spec["description"],
                "sla_accepted_on": accepted_on,
                "sla_reference": reference,
                "default_backend": configured_default_backend(),
                "job_quota": spec["quota"],
            },
        )
        experiments[slug] = exp
        for gslug, gname in spec["groups"]:
            _upsert(PhysicsGroup, {"experiment": exp, "slug": gslug}, {"name": gname})

    for username, role, experiment, password in DEMO_USERS:
        grant_role(username, role, experiment, password=password, email=f"{username}@example.org")
        report.users.append((username, role, experiment, password))

    User = get_user_model()
    operators = list(User.objects.filter(username__in=["olivia", "oscar"]))
    for slug, exp in experiments.items():
        liaison = User.objects.get(username="liam" if slug == "dune" else "sara")
        stage_codes = []
        for _name, script, *_ in STAGES:
            path = DEMO_WORKFLOW_DIR / script
            code = _upsert(
                ProductionCode,
                {"experiment": exp, "name": f"toy-{path.stem}", "version": "1.0"},
                {
                    "kind": CodeKind.SCRIPT,
                    "location": str(path),
                    "sha256": _sha256(path),
                    "approved": slug == "dune",
                    "approved_at": timezone.make_aware(dt.datetime(2026, 9, 15))
                    if slug == "dune"
                    else None,
                },
            )
            code.owners.set([liaison])
            stage_codes.append(code)
        template = _upsert(
            WorkflowTemplate,
            {"experiment": exp, "name": "toy-gen-sim-reco", "version": 1},
            {"description": "Toy generation, simulation and reconstruction (seconds per job)."},
        )
        previous = None
        for position, (name, _s, params, cores, mem, wall, split, fpj) in enumerate(STAGES):
            previous = _upsert(
                StageTemplate,
                {"template": template, "position": position},
                {
                    "name": name,
                    "code": stage_codes[position],
                    "parameters": params,
                    "cores": cores,
                    "memory_mb": mem,
                    "walltime_s": wall,
                    "split": split,
                    "files_per_job": fpj,
                    "input_stage": previous,
                },
            )
        if slug == "dune":
            training = _upsert(
                TrainingRecord,
                {"experiment": exp, "held_on": dt.date(2026, 10, 6)},
                {
                    "topics": [TrainingTopic.SUBMISSION, TrainingTopic.MONITORING],
                    "notes": "Walk-through of the MCC5.0 submission and monitoring procedures.",
                },
            )
            training.attendees.set(operators)
            operator = User.objects.get(username="olivia")
            _seed_dune_requests(exp, liaison, operator, template, report)
    report.lines.append(f"{len(experiments)} experiments, {len(DEMO_USERS)} users")


def _seed_dune_requests(exp, liaison, operator, template, report: SeedReport) -> None:
    """File the demo requests as a liaison would and move them on through the real
    transitions (the transition log and its notes are the demo's history too)."""
    today = timezone.localdate()
    for group_slug, ticket, title, events, per_job, priority, days, state in DUNE_REQUESTS:
        request = ProductionRequest.objects.filter(experiment=exp, ticket=ticket).first()
        if request is None:
            request = create_request(
                liaison,
                exp,
                {
                    "ticket": ticket,
                    "physics_group": group_slug,
                    "title": title,
                    "description": f"{title} for the MCC5.0 production round.",
                    "deadline": (today + dt.timedelta(days=days)).isoformat(),
                    "priority": priority,
                },
                [
                    {
                        "name": f"{group_slug}-mc",
                        "template": template,
                        "events": events,
                        "events_per_job": per_job,
                        "parameters": {"seed": 1 + len(ticket), "energy_gev": 2.5},
                        "output_dataset": f"{exp.slug}:mcc5.0:{group_slug}",
                    }
                ],
            )
            for action, actor in _ACTIONS_TO[state]:
                request = transition(request, action, liaison if actor == "liaison" else operator)
        report.lines.append(f"{request.number} {title} ({request.state})")


# How a demo request reaches its state, by whom.
_ACTIONS_TO = {
    RequestState.DRAFT: [],
    RequestState.SUBMITTED: [("submit", "liaison")],
    RequestState.APPROVED: [("submit", "liaison"), ("approve", "operator")],
}

"""The service level agreement checklist: may this request be approved?"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.conf import settings

from experiments.choices import ExperimentRole, TrainingTopic
from experiments.models import TrainingRecord

from ..models import ProductionRequest


@dataclass(frozen=True)
class Check:
    """One item of the checklist, with what is missing and who can fix it."""

    key: str
    label: str
    ok: bool
    missing: list[str] = field(default_factory=list)
    fixer: str = ""


def ticket_is_valid(ticket: str) -> bool:
    return bool(re.fullmatch(settings.OPOS_TICKET_PATTERN, ticket or ""))


def required_topics(request: ProductionRequest) -> set[str]:
    """Every production needs submission and monitoring; input data needs data handling."""
    topics = {TrainingTopic.SUBMISSION.value, TrainingTopic.MONITORING.value}
    if any(sample.input_dataset for sample in request.samples.all()):
        topics.add(TrainingTopic.DATA_HANDLING.value)
    return topics


def sla_checks(request: ProductionRequest) -> list[Check]:
    """The four SLA conditions, each with what is missing.

    Runs a fixed number of queries (samples, their templates' stages and
    code with owners, memberships, training records) whatever the size.
    """
    experiment = request.experiment
    checks = [
        Check(
            "sla",
            "Service level agreement accepted",
            experiment.sla_accepted,
            []
            if experiment.sla_accepted
            else [f"{experiment.name} has no recorded SLA acceptance (date and document)"],
            "an OPOS administrator records the signed SLA",
        )
    ]

    samples = list(
        request.samples.select_related("template").prefetch_related(
            "template__stages__code__owners"
        )
    )
    authorised = set(
        experiment.members.filter(role=ExperimentRole.LIAISON).values_list("user_id", flat=True)
    )
    code_missing: list[str] = []
    seen: set[int] = set()
    for sample in samples:
        stages = list(sample.template.stages.all())
        if not stages:
            code_missing.append(f"template {sample.template.name} has no stages")
        for stage in stages:
            code = stage.code
            if code.id in seen:
                continue
            seen.add(code.id)
            label = f"{code.name} {code.version}"
            if code.experiment_id != experiment.id:
                code_missing.append(f"{label} is registered for another experiment")
            if not code.approved:
                code_missing.append(f"{label} is not approved")
            if not code.sha256:
                code_missing.append(f"{label} has no sha256 checksum")
            owners = list(code.owners.all())
            if not owners:
                code_missing.append(f"{label} has no owners")
            strangers = [o.username for o in owners if o.id not in authorised]
            if strangers:
                code_missing.append(
                    f"{label} is owned by accounts not authorised for {experiment.slug}: "
                    + ", ".join(sorted(strangers))
                )
    if not samples:
        code_missing.append("the request has no samples")
    checks.append(
        Check(
            "code",
            "Production code registered, approved, checksummed, owned by authorised accounts",
            not code_missing,
            code_missing,
            "an operator registers and approves the code; the liaison fixes its ownership",
        )
    )

    needed = required_topics(request)
    trained: set[str] = set()
    for topics in TrainingRecord.objects.filter(experiment=experiment).values_list(
        "topics", flat=True
    ):
        trained.update(topics or [])
    untrained = sorted(needed - trained)
    checks.append(
        Check(
            "training",
            "Operators trained on " + ", ".join(sorted(needed)),
            not untrained,
            [f"no training recorded on {TrainingTopic(t).label.lower()}" for t in untrained],
            "an operator records the training session",
        )
    )

    ticket_ok = ticket_is_valid(request.ticket)
    checks.append(
        Check(
            "ticket",
            "Service-desk ticket reference",
            ticket_ok,
            []
            if ticket_ok
            else [f"{request.ticket!r} does not match {settings.OPOS_TICKET_PATTERN}"],
            "the liaison corrects the ticket reference",
        )
    )
    return checks


def unmet(request: ProductionRequest) -> list[str]:
    """Every missing item, as sentences; empty when the request is eligible."""
    return [item for check in sla_checks(request) if not check.ok for item in check.missing]

"""Failure classification rules: operators add, change and remove them, each change audited.

Rules are operations policy read live by ``campaigns.execution.failures`` (a changed rule
applies to the next failure), so who changed which rule, from what to what, is recorded in
the audit trail like the other records that decide how production runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction

from requests_app.models import WorkflowTemplate
from requests_app.services.audit import record

from ..models import FailureRule
from .errors import require_operator

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

RULE_FIELDS = (
    "template",
    "position",
    "exit_codes",
    "stderr_pattern",
    "batch_reason",
    "failure_class",
    "action",
    "max_attempts",
    "factor",
    "description",
)


def _snapshot(rule: FailureRule) -> dict[str, Any]:
    """The rule's fields as plain data for the audit record (the template by id)."""
    data = {field: getattr(rule, field) for field in RULE_FIELDS if field != "template"}
    data["template"] = rule.template_id
    return data


def _label(rule: FailureRule) -> str:
    where = f"template {rule.template_id}" if rule.template_id else "every template"
    return f"failure rule {rule.pk}: {rule.failure_class} -> {rule.action} ({where})"


def _experiment(template: WorkflowTemplate | None):
    return template.experiment if template is not None else None


def _validate(rule: FailureRule) -> None:
    """The model's field checks and its own rules, as one ``ValidationError`` by field."""
    rule.full_clean()


def _locked(rule: FailureRule) -> FailureRule:
    # ``of=("self",)``: the template is a nullable join, which FOR UPDATE cannot lock.
    return (
        FailureRule.objects.select_for_update(of=("self",))
        .select_related("template__experiment")
        .get(pk=rule.pk)
    )


def _unknown(changes: dict[str, Any]) -> None:
    unknown = sorted(set(changes) - set(RULE_FIELDS))
    if unknown:
        raise ValidationError({name: ["not a field of a failure rule"] for name in unknown})


@transaction.atomic
def create_rule(actor: AbstractBaseUser, **fields: Any) -> FailureRule:
    """Add a rule (``template`` None: it applies to every template, after their own)."""
    require_operator(actor, "change failure rules")
    _unknown(fields)
    rule = FailureRule(**fields)
    _validate(rule)
    rule.save()
    record(
        "create_failure_rule",
        _label(rule),
        actor=actor,
        experiment=_experiment(rule.template),
        rule=_snapshot(rule),
    )
    return rule


@transaction.atomic
def update_rule(actor: AbstractBaseUser, rule: FailureRule, changes: dict[str, Any]) -> FailureRule:
    """Change some fields of a rule; the audit keeps the old and the new values."""
    require_operator(actor, "change failure rules")
    _unknown(changes)
    rule = _locked(rule)
    before = _snapshot(rule)
    for name, value in changes.items():
        setattr(rule, name, value)
    _validate(rule)
    rule.save()
    after = _snapshot(rule)
    changed = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    record(
        "update_failure_rule",
        _label(rule),
        actor=actor,
        experiment=_experiment(rule.template),
        changes=changed,
    )
    return rule


@transaction.atomic
def delete_rule(actor: AbstractBaseUser, rule: FailureRule) -> None:
    """Remove a rule; the audit keeps what it said."""
    require_operator(actor, "change failure rules")
    rule = _locked(rule)
    label, snapshot, experiment = _label(rule), _snapshot(rule), _experiment(rule.template)
    rule.delete()
    record("delete_failure_rule", label, actor=actor, experiment=experiment, rule=snapshot)

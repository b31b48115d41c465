"""Failure classification rules: operators add, change and remove them, each change audited.

Rules are operations policy read live by ``campaigns.execution.failures`` (a changed rule
applies to the next failure), so who changed which rule, from what to what, is recorded in
the audit trail like the other records that decide how production runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction

from experiments.models import WorkflowTemplate
from experiments.services.audit import record

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


# --- rules travelling with their template (export, import, clone) ---------------------------

MAX_RULES = 50
DOCUMENT_KEYS = tuple(field for field in RULE_FIELDS if field != "template")


def rules_document(template: WorkflowTemplate) -> list[dict[str, Any]]:
    """The template's own rules as plain data, in the order they are tried."""
    rules = FailureRule.objects.filter(template=template).order_by("position", "id")
    out = []
    for rule in rules:
        item = {key: getattr(rule, key) for key in DOCUMENT_KEYS}
        # Leave out what is empty or the default, so the document stays short.
        out.append({k: v for k, v in item.items() if v not in ("", [], None)})
    return out


def parse_rules(value: Any, err: Callable[[str, str], None]) -> list[dict[str, Any]]:
    """Check the ``failure_rules`` of a template document with the model's own rules;
    every problem goes to ``err(path, message)``, e.g. ``failure_rules[0].factor``."""
    if value is None:
        return []
    if not isinstance(value, list):
        err("failure_rules", "must be a list of rules")
        return []
    if len(value) > MAX_RULES:
        err("failure_rules", f"at most {MAX_RULES} rules")
        return []
    rules = []
    for index, item in enumerate(value):
        path = f"failure_rules[{index}]"
        if not isinstance(item, dict):
            err(path, "each rule must be a mapping")
            continue
        unknown = [key for key in item if key not in DOCUMENT_KEYS]
        for key in unknown:
            err(f"{path}.{key}", f"unknown field (allowed: {', '.join(DOCUMENT_KEYS)})")
        fields = {key: item[key] for key in DOCUMENT_KEYS if key in item}
        # PostgreSQL can neither store nor compare text holding a NUL character.
        nul = [key for key, v in fields.items() if isinstance(v, str) and "\x00" in v]
        for key in nul:
            err(f"{path}.{key}", "NUL characters are not allowed")
        if nul:
            continue
        for key in ("stderr_pattern", "batch_reason", "description"):
            if fields.get(key) is None:
                fields.pop(key, None)
        rule = FailureRule(**fields)
        # Field types first: the rule's own checks compare values of the right type.
        try:
            rule.clean_fields(exclude=["template"])
            rule.clean()
        except ValidationError as exc:
            by_field = (
                exc.message_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}
            )
            for field, messages in by_field.items():
                where = path if field == NON_FIELD_ERRORS else f"{path}.{field}"
                for message in messages:
                    err(where, message)
            continue
        if not unknown:
            rules.append({key: getattr(rule, key) for key in DOCUMENT_KEYS})
    return rules


def add_rules(template: WorkflowTemplate, rules: list[dict[str, Any]]) -> int:
    """Create checked rules (``parse_rules``) for a new template, in one query."""
    FailureRule.objects.bulk_create([FailureRule(template=template, **rule) for rule in rules])
    return len(rules)


def copy_rules(source: WorkflowTemplate, target: WorkflowTemplate) -> int:
    """Give a clone the rules of the template it was cloned from."""
    rules = FailureRule.objects.filter(template=source).order_by("position", "id")
    return add_rules(target, [{key: getattr(r, key) for key in DOCUMENT_KEYS} for r in rules])

"""Workflow templates on the execution side: checks, clone, export and import.

Templates live in ``requests_app`` (samples are validated against them);
execution adopts them into experiments, moves them between sites as YAML
and refuses to plan from one that could not run.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from common import limits
from experiments.choices import ExperimentRole
from experiments.models import (
    Experiment,
    Membership,
    ProductionCode,
    SplitRule,
    StageTemplate,
    WorkflowTemplate,
)
from experiments.parameters import validate_spec
from experiments.services.audit import record

from . import failure_rules
from .errors import CampaignError, require_operator

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

MAX_STAGES = 20
MAX_TEMPLATE_BYTES = 256 * 1024
TEMPLATE_KEYS = ("name", "version", "description", "stages", "failure_rules")
STAGE_KEYS = (
    "name",
    "code",
    "parameters",
    "cores",
    "memory_mb",
    "walltime_s",
    "split",
    "files_per_job",
    "input_stage",
)
CODE_KEYS = ("name", "version", "sha256", "experiment")


def find_cycle(edges: Mapping[Hashable, Hashable | None]) -> list | None:
    """A cycle in "stage reads stage" links, as ``[a, b, ..., a]``, or None.

    Each stage reads at most one other, so following the links from every
    stage either ends (no input) or comes back to a stage already on the path.
    """
    done: set = set()
    for start in edges:
        path: list = []
        on_path: set = set()
        node = start
        while node is not None and node not in done:
            if node in on_path:
                cycle = path[path.index(node) :]
                return [*cycle, node]
            path.append(node)
            on_path.add(node)
            node = edges.get(node)
        done.update(path)
    return None


def topological_order(stages: Iterable[StageTemplate]) -> list[StageTemplate]:
    """Stages with every input stage before its readers (position breaks ties).

    Call only after ``find_cycle`` found none.
    """
    remaining = sorted(stages, key=lambda s: s.position)
    placed: set[int] = set()
    ordered: list[StageTemplate] = []
    while remaining:
        ready = [s for s in remaining if s.input_stage_id is None or s.input_stage_id in placed]
        if not ready:  # a link out of the template: keep position order
            ready = remaining[:1]
        for stage in ready:
            ordered.append(stage)
            placed.add(stage.id)
        remaining = [s for s in remaining if s.id not in placed]
    return ordered


def template_problems(
    template: WorkflowTemplate,
    stages: list[StageTemplate],
    experiment: Experiment,
    liaisons: set[int],
) -> list[str]:
    """Why ``template`` cannot run for ``experiment`` (empty when it can).

    ``stages`` come with ``code`` and ``code.owners`` loaded; ``liaisons`` are
    the user ids authorised for the experiment. The rules are the SLA's: only
    registered, approved, checksummed code of the experiment, owned only by
    its authorised accounts.
    """
    label = f"template {template.name} v{template.version}"
    if not stages:
        return [f"{label}: has no stages"]
    problems = []
    ids = {s.id for s in stages}
    names = {s.id: s.name for s in stages}
    for stage in stages:
        if stage.input_stage_id is not None and stage.input_stage_id not in ids:
            problems.append(
                f"{label}: stage {stage.name}: input_stage is a stage of another template"
            )
    cycle = find_cycle(
        {s.id: (s.input_stage_id if s.input_stage_id in ids else None) for s in stages}
    )
    if cycle:
        problems.append(
            f"{label}: input stages form a cycle: {' -> '.join(names[i] for i in cycle)}"
        )
    seen: set[int] = set()
    for stage in stages:
        code = stage.code
        where = f"{label}: stage {stage.name}: code {code.name} {code.version}"
        if stage.split == SplitRule.FILES and not stage.files_per_job:
            problems.append(
                f"{label}: stage {stage.name}: files_per_job is required to split by files"
            )
        if code.id in seen:
            continue
        seen.add(code.id)
        if code.experiment_id != experiment.id:
            problems.append(f"{where} is not registered for {experiment.slug}")
        if not code.approved:
            problems.append(f"{where} is not approved")
        if not code.sha256:
            problems.append(f"{where} has no sha256")
        owners = list(code.owners.all())
        strangers = sorted(o.username for o in owners if o.id not in liaisons)
        if not owners:
            problems.append(f"{where} has no owners")
        elif strangers:
            problems.append(f"{where} is owned by accounts not authorised: {', '.join(strangers)}")
    return problems


def experiment_liaisons(experiment: Experiment) -> set[int]:
    """User ids of the experiment's liaisons: the accounts authorised to own its code."""
    return set(
        Membership.objects.filter(experiment=experiment, role=ExperimentRole.LIAISON).values_list(
            "user_id", flat=True
        )
    )


# --- clone -------------------------------------------------------------------


def _next_version(experiment: Experiment | None, name: str) -> int:
    current = WorkflowTemplate.objects.filter(experiment=experiment, name=name).aggregate(
        v=Max("version")
    )["v"]
    return (current or 0) + 1


@transaction.atomic
def clone_template(
    template: WorkflowTemplate,
    experiment: Experiment,
    actor: AbstractBaseUser,
    name: str = "",
) -> tuple[WorkflowTemplate, list[str]]:
    """Copy a template (typically a shared one) into ``experiment`` to adopt and adapt it.

    Each stage's code is matched by name and version in the experiment's own
    registry; where there is no match the stage keeps the original code and a
    warning says what to register, since planning refuses code of another
    experiment. Returns the new template and the warnings.
    """
    require_operator(actor, "clone templates")
    name = (name or template.name).strip()
    if not name or len(name) > 120:
        raise CampaignError("Cannot clone the template.", ["name: 1 to 120 characters"])
    stages = list(template.stages.select_related("code").order_by("position"))
    registry = {
        (c.name, c.version): c
        for c in ProductionCode.objects.filter(
            experiment=experiment, name__in={s.code.name for s in stages}
        )
    }
    clone = WorkflowTemplate.objects.create(
        experiment=experiment,
        name=name,
        version=_next_version(experiment, name),
        description=template.description,
        cloned_from=template,
    )
    warnings = []
    copies: dict[int, StageTemplate] = {}
    for stage in stages:
        code = registry.get((stage.code.name, stage.code.version))
        if code is None:
            code = stage.code
            if code.experiment_id != experiment.id:
                warnings.append(
                    f"stage {stage.name}: code {code.name} {code.version} is not registered for "
                    f"{experiment.slug}; register it there and point the stage at it before "
                    "scheduling"
                )
        copies[stage.id] = StageTemplate.objects.create(
            template=clone,
            position=stage.position,
            name=stage.name,
            code=code,
            parameters=stage.parameters,
            cores=stage.cores,
            memory_mb=stage.memory_mb,
            walltime_s=stage.walltime_s,
            split=stage.split,
            files_per_job=stage.files_per_job,
        )
    for stage in stages:
        if stage.input_stage_id in copies:
            copy = copies[stage.id]
            copy.input_stage = copies[stage.input_stage_id]
            copy.save(update_fields=["input_stage"])
    rules = failure_rules.copy_rules(template, clone)
    record(
        "clone_template",
        f"{clone.name} v{clone.version}",
        actor=actor,
        experiment=experiment,
        template=clone.pk,
        cloned_from=template.pk,
        source=f"{template.name} v{template.version}",
        failure_rules=rules,
        warnings=warnings,
    )
    return clone, warnings


# --- export ------------------------------------------------------------------


def export_template(template: WorkflowTemplate) -> str:
    """The template as a readable YAML document that ``import_template`` accepts."""
    stages = list(template.stages.select_related("code__experiment", "input_stage"))
    doc: dict[str, Any] = {
        "name": template.name,
        "version": template.version,
        "description": template.description,
        "stages": [],
    }
    for stage in sorted(stages, key=lambda s: s.position):
        item: dict[str, Any] = {
            "name": stage.name,
            "code": {
                "name": stage.code.name,
                "version": stage.code.version,
                "sha256": stage.code.sha256,
                "experiment": stage.code.experiment.slug,
            },
            "parameters": stage.parameters or {},
            "cores": stage.cores,
            "memory_mb": stage.memory_mb,
            "walltime_s": stage.walltime_s,
            "split": stage.split,
        }
        if stage.files_per_job:
            item["files_per_job"] = stage.files_per_job
        if stage.input_stage_id:
            item["input_stage"] = stage.input_stage.name
        doc["stages"].append(item)
    rules = failure_rules.rules_document(template)
    if rules:
        doc["failure_rules"] = rules
    owner = template.experiment.slug if template.experiment_id else "shared"
    header = (
        f"# OPOS workflow template {template.name} v{template.version} ({owner}).\n"
        "# Stages run in list order; input_stage names the stage whose output a stage reads.\n"
        "# failure_rules (if any) are the template's own, tried in position order.\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


# --- import ------------------------------------------------------------------


class _Doc:
    """A YAML document turned into plain data, remembering each path's line number.

    Aliases are walked like copies, so a budget of nodes and a depth limit keep a
    self-referencing or "billion laughs" document from recursing or expanding forever.
    """

    MAX_NODES = 20000
    MAX_DEPTH = 30

    def __init__(self, text: str):
        self.lines: dict[str, int] = {}
        self.duplicates: list[str] = []
        self.nodes = 0
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            self.data = None if node is None else self._build(loader, node, "")
        finally:
            loader.dispose()

    def _build(self, loader, node, path: str, depth: int = 0):
        self.nodes += 1
        if self.nodes > self.MAX_NODES or depth > self.MAX_DEPTH:
            raise yaml.YAMLError(
                f"the document nests deeper than {self.MAX_DEPTH} levels or has more than"
                f" {self.MAX_NODES} values (aliases count each time they are used)"
            )
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool | None):
                    key = str(key)  # a list or mapping as a key: named as an unknown field
                sub = f"{path}.{key}" if path else str(key)
                if key in result:
                    self.duplicates.append(
                        f"line {key_node.start_mark.line + 1}: {sub}: given twice"
                    )
                self.lines[sub] = key_node.start_mark.line + 1
                result[key] = self._build(loader, value_node, sub, depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [
                self._build(loader, item, f"{path}[{i}]", depth + 1)
                for i, item in enumerate(node.value)
            ]
        return loader.construct_object(node, deep=True)

    def at(self, path: str) -> str:
        """``"line N: path"`` for a message, with the nearest known line."""
        probe = path
        while probe and probe not in self.lines:
            probe = probe.rsplit(".", 1)[0] if "." in probe else ""
        line = self.lines.get(probe)
        return f"line {line}: {path}" if line else path


# The largest value each integer of a template fits (its column: cores is a smallint).
INT_LIMITS = {"cores": 32767}


def _positive_int(value, default=None, limit: int = limits.INT32_MAX):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit:
        raise ValueError
    return value


def parse_template(text: str | bytes, experiment: Experiment | None) -> dict[str, Any]:
    """Validate a template document; return its cleaned content.

    Every problem is reported at once, each naming its line and field
    (``"line 12: stages[1].files_per_job: a whole number above 0 is required"``).
    """
    if isinstance(text, bytes):
        if len(text) > MAX_TEMPLATE_BYTES:
            raise CampaignError(
                "The template file is too large.", [f"at most {MAX_TEMPLATE_BYTES} bytes"]
            )
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise CampaignError("The template file is not UTF-8 text.") from None
    if len(text) > MAX_TEMPLATE_BYTES:
        raise CampaignError(
            "The template file is too large.", [f"at most {MAX_TEMPLATE_BYTES} bytes"]
        )
    try:
        doc = _Doc(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CampaignError("The template is not valid YAML.", [f"{where}{problem}"]) from None
    return clean_template(doc.data, experiment, at=doc.at, errors=list(doc.duplicates))


def clean_template(
    data: Any,
    experiment: Experiment | None,
    at: Callable[[str], str] = str,
    errors: list[str] | None = None,
) -> dict[str, Any]:
    """Validate a template given as data (a parsed document, or a JSON body); return its
    cleaned content. ``at`` names a field's place (``parse_template``: its line)."""
    errors = list(errors or [])
    if not isinstance(data, dict):
        raise CampaignError("The template is not valid.", ["the document must be a mapping"])

    def err(path: str, message: str) -> None:
        errors.append(f"{at(path)}: {message}")

    for key in data:
        if key not in TEMPLATE_KEYS:
            err(str(key), f"unknown field (allowed: {', '.join(TEMPLATE_KEYS)})")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 120:
        err("name", "required: text of 1 to 120 characters")
    try:
        version = _positive_int(data.get("version"), 1)
    except ValueError:
        err("version", f"a whole number from 1 to {limits.INT32_MAX} is required")
        version = 1
    description = data.get("description") or ""
    if not isinstance(description, str):
        err("description", "must be text")
        description = ""
    stages_data = data.get("stages")
    if not isinstance(stages_data, list) or not stages_data:
        err("stages", "required: a list of at least one stage")
        stages_data = []
    elif len(stages_data) > MAX_STAGES:
        err("stages", f"at most {MAX_STAGES} stages")
        stages_data = []

    stages: list[dict[str, Any]] = []
    for i, item in enumerate(stages_data):
        stages.append(_parse_stage(item, f"stages[{i}]", experiment, err))
    names = [s["name"] for s in stages if s.get("name")]
    for i, stage in enumerate(stages):
        if stage.get("name") and names.count(stage["name"]) > 1 and names.index(stage["name"]) != i:
            err(f"stages[{i}].name", f"{stage['name']!r} is used by another stage")
        source = stage.get("input_stage")
        if source is not None and source not in names:
            err(f"stages[{i}].input_stage", f"no stage is named {source!r}")
        if source is not None and source == stage.get("name"):
            err(f"stages[{i}].input_stage", "a stage cannot read its own output")
    cycle = find_cycle({s["name"]: s.get("input_stage") for s in stages if s.get("name")})
    if cycle and len(cycle) > 2:  # a stage reading itself is reported above
        err("stages", f"input_stage links form a cycle: {' -> '.join(cycle)}")
    rules = failure_rules.parse_rules(data.get("failure_rules"), err)
    if errors:
        raise CampaignError("The template is not valid.", errors)
    return {
        "name": name.strip(),
        "version": version,
        "description": description,
        "stages": stages,
        "failure_rules": rules,
    }


def _parse_stage(item, path: str, experiment: Experiment | None, err) -> dict[str, Any]:
    if not isinstance(item, dict):
        err(path, "each stage must be a mapping")
        return {}
    for key in item:
        if key not in STAGE_KEYS:
            err(f"{path}.{key}", f"unknown field (allowed: {', '.join(STAGE_KEYS)})")
    stage: dict[str, Any] = {}
    name = item.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 60:
        err(f"{path}.name", "required: text of 1 to 60 characters")
    else:
        stage["name"] = name.strip()
    stage["code"] = _parse_code(item.get("code"), f"{path}.code", experiment, err)
    parameters = item.get("parameters") or {}
    try:
        validate_spec(parameters)
        stage["parameters"] = parameters
    except ValidationError as exc:
        for message in exc.messages:
            err(f"{path}.parameters", message)
    for key, default in (("cores", 1), ("memory_mb", 2000), ("walltime_s", 3600)):
        limit = INT_LIMITS.get(key, limits.INT32_MAX)
        try:
            stage[key] = _positive_int(item.get(key), default, limit)
        except ValueError:
            err(f"{path}.{key}", f"a whole number from 1 to {limit} is required")
    split = item.get("split", SplitRule.EVENTS.value)
    if split not in SplitRule.values:
        err(f"{path}.split", f"choose one of {', '.join(SplitRule.values)}")
    stage["split"] = split
    try:
        stage["files_per_job"] = _positive_int(item.get("files_per_job"))
    except ValueError:
        err(f"{path}.files_per_job", f"a whole number from 1 to {limits.INT32_MAX} is required")
    if split == SplitRule.FILES and not stage.get("files_per_job"):
        err(f"{path}.files_per_job", "required when split is files")
    if split == SplitRule.EVENTS and stage.get("files_per_job"):
        err(f"{path}.files_per_job", "only for split: files")
    source = item.get("input_stage")
    if source is not None and not isinstance(source, str):
        err(f"{path}.input_stage", "must be the name of another stage")
        source = None
    stage["input_stage"] = source
    return stage


def _parse_code(value, path: str, experiment: Experiment | None, err) -> ProductionCode | None:
    if not isinstance(value, dict):
        err(path, "required: a mapping with name and version of registered code")
        return None
    for key in value:
        if key not in CODE_KEYS:
            err(f"{path}.{key}", f"unknown field (allowed: {', '.join(CODE_KEYS)})")
    name, version = value.get("name"), value.get("version")
    if not isinstance(name, str) or not name:
        err(f"{path}.name", "required")
    if isinstance(version, int | float) and not isinstance(version, bool):
        version = str(version)  # YAML reads 1.0 as a number
    if not isinstance(version, str) or not version:
        err(f"{path}.version", "required")
    slug = value.get("experiment")
    if slug is None and experiment is None:
        err(f"{path}.experiment", "required for a shared template (whose code is it?)")
        return None
    if experiment is not None and slug not in (None, experiment.slug):
        err(
            f"{path}.experiment",
            f"must be {experiment.slug}: a template runs its own experiment's code",
        )
        return None
    if not isinstance(name, str) or not isinstance(version, str):
        return None
    code = (
        ProductionCode.objects.filter(name=name, version=version)
        .filter(**({"experiment": experiment} if experiment else {"experiment__slug": slug}))
        .first()
    )
    owner = experiment.slug if experiment else slug
    if code is None:
        err(path, f"{name} {version} is not registered for {owner}")
        return None
    sha256 = value.get("sha256")
    if sha256 and sha256 != code.sha256:
        err(
            f"{path}.sha256",
            f"does not match the registered {name} {version} ({code.sha256[:12]}...)",
        )
    return code


@transaction.atomic
def import_template(
    text: str | bytes, experiment: Experiment | None, actor: AbstractBaseUser
) -> WorkflowTemplate:
    """Create a template from a YAML document (see ``export_template``), for
    ``experiment`` or shared when None. Nothing is created unless all of it is valid."""
    require_operator(actor, "import templates")
    return _create(parse_template(text, experiment), experiment, actor, "import_template")


@transaction.atomic
def create_template(
    data: Any, experiment: Experiment | None, actor: AbstractBaseUser
) -> WorkflowTemplate:
    """Create a template from data shaped like the YAML document (a JSON body), with the
    same checks as ``import_template``; errors name the field (``stages[1].cores``)."""
    require_operator(actor, "create templates")
    return _create(clean_template(data, experiment), experiment, actor, "create_template")


def _create(
    cleaned: dict[str, Any], experiment: Experiment | None, actor: AbstractBaseUser, action: str
) -> WorkflowTemplate:
    if WorkflowTemplate.objects.filter(
        experiment=experiment, name=cleaned["name"], version=cleaned["version"]
    ).exists():
        owner = experiment.slug if experiment else "shared templates"
        raise CampaignError(
            "The template is not valid.",
            [
                f"version: {cleaned['name']} v{cleaned['version']} already exists in {owner}; "
                "give a higher version"
            ],
        )
    template = WorkflowTemplate.objects.create(
        experiment=experiment,
        name=cleaned["name"],
        version=cleaned["version"],
        description=cleaned["description"],
    )
    created: dict[str, StageTemplate] = {}
    for position, stage in enumerate(cleaned["stages"]):
        created[stage["name"]] = StageTemplate.objects.create(
            template=template,
            position=position,
            name=stage["name"],
            code=stage["code"],
            parameters=stage["parameters"],
            cores=stage["cores"],
            memory_mb=stage["memory_mb"],
            walltime_s=stage["walltime_s"],
            split=stage["split"],
            files_per_job=stage["files_per_job"],
        )
    for stage in cleaned["stages"]:
        if stage["input_stage"]:
            row = created[stage["name"]]
            row.input_stage = created[stage["input_stage"]]
            row.save(update_fields=["input_stage"])
    rules = failure_rules.add_rules(template, cleaned["failure_rules"])
    record(
        action,
        f"{template.name} v{template.version}",
        actor=actor,
        experiment=experiment,
        template=template.pk,
        stages=[stage["name"] for stage in cleaned["stages"]],
        failure_rules=rules,
    )
    return template

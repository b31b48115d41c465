"""Overrides of a recovery: more memory or walltime, or other parameter values, for the new
attempts only.

Memory and walltime are bounded by the site's ceilings (``OPOS_MAX_MEMORY_MB``,
``OPOS_MAX_WALLTIME_S``, the same the automatic retries stop at). Parameter values are
checked against the workflow template's specification of each stage they apply to
(``experiments.parameters``, the rules a request's samples were filed under): a name only
applies to the stages that declare it, and a name no selected stage declares is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from experiments.models import StageTemplate
from experiments.parameters import validate_parameters

from .errors import CampaignError


def memory_ceiling() -> int:
    return int(getattr(settings, "OPOS_MAX_MEMORY_MB", 64000))


def walltime_ceiling() -> int:
    return int(getattr(settings, "OPOS_MAX_WALLTIME_S", 7 * 86400))


@dataclass(frozen=True)
class Overrides:
    """What a recovery changes for its new attempts (nothing, by default)."""

    memory_mb: int | None = None
    walltime_s: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.memory_mb or self.walltime_s or self.parameters)

    def record(self) -> dict[str, Any]:
        """For the audit record: only what is set."""
        data: dict[str, Any] = {}
        if self.memory_mb:
            data["memory_mb"] = self.memory_mb
        if self.walltime_s:
            data["walltime_s"] = self.walltime_s
        if self.parameters:
            data["parameters"] = dict(self.parameters)
        return data


def _whole(value: Any, name: str, ceiling: int, setting: str, problems: list[str]) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        problems.append(f"{name}: a whole number is required")
        return None
    try:
        number = int(str(value).strip()) if isinstance(value, str) else int(value)
        if isinstance(value, float) and not value.is_integer():
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        problems.append(f"{name}: a whole number is required, not {str(value)[:40]!r}")
        return None
    if number <= 0:
        problems.append(f"{name}: must be greater than zero")
    elif number > ceiling:
        problems.append(f"{name}: at most {ceiling} ({setting})")
    return number


def clean_overrides(raw: Mapping[str, Any] | None) -> Overrides:
    """Memory, walltime and parameters from a form, an API body or the CLI, checked for
    their form (the template check needs the stages: ``parameters_for_stages``)."""
    raw = raw or {}
    problems: list[str] = []
    memory = _whole(
        raw.get("memory_mb"), "memory_mb", memory_ceiling(), "OPOS_MAX_MEMORY_MB", problems
    )
    walltime = _whole(
        raw.get("walltime_s"), "walltime_s", walltime_ceiling(), "OPOS_MAX_WALLTIME_S", problems
    )
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        problems.append("parameters: a mapping of name to value")
        parameters = {}
    if problems:
        raise CampaignError("The overrides are not valid.", problems, kind="invalid")
    return Overrides(memory, walltime, dict(parameters))


def parameters_for_stages(
    overrides: Overrides, stages: Iterable[Mapping[str, Any]]
) -> dict[int, dict[str, Any]]:
    """The parameter overrides each stage gets, checked against its template stage.

    ``stages`` are rows with ``id``, ``name``, ``parameters`` (the values it was planned
    with) and ``template_stage_id``. Returns ``{stage id: {name: value}}`` with the values
    coerced to their declared types; raises ``CampaignError`` naming every problem.
    """
    wanted = overrides.parameters
    if not wanted:
        return {}
    rows = list(stages)
    specs = dict(
        StageTemplate.objects.filter(
            pk__in={r["template_stage_id"] for r in rows if r["template_stage_id"]}
        ).values_list("pk", "parameters")
    )
    problems: list[str] = []
    result: dict[int, dict[str, Any]] = {}
    declared: set[str] = set()
    for row in rows:
        spec = specs.get(row["template_stage_id"])
        if spec is None:
            problems.append(
                f"stage {row['name']}: its template stage was deleted; parameters cannot be "
                "checked (recover it without parameter overrides)"
            )
            continue
        mine = {k: v for k, v in wanted.items() if k in (spec or {})}
        if not mine:
            continue
        declared.update(mine)
        planned = {k: v for k, v in (row["parameters"] or {}).items() if k in spec}
        try:
            cleaned = validate_parameters(spec, {**planned, **mine})
        except ValidationError as exc:
            problems.extend(f"parameters: stage {row['name']}: {m}" for m in exc.messages)
            continue
        result[row["id"]] = {k: cleaned[k] for k in mine}
    unknown = sorted(set(wanted) - declared)
    if unknown and not problems:
        known = sorted({name for spec in specs.values() for name in (spec or {})})
        problems.extend(
            f"parameters: {name}: no stage recovered declares it (the template accepts: "
            f"{', '.join(known) or 'none'})"
            for name in unknown
        )
    if problems:
        raise CampaignError("The parameter overrides are not valid.", problems, kind="invalid")
    return result

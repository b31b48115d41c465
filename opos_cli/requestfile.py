"""``opos requests create -f request.yaml``: read and check a request file before sending it.

The server has the last word (templates, parameters, ticket format and
membership live there); this catches what can be known locally -- a missing
field, a typo in a key, a word where a number belongs, a date that is not a
date, a deadline already past, a sample line that cannot be right -- and
says exactly where, so nothing is sent half-right.

The file mirrors the API's request JSON::

    experiment: dune
    physics_group: oscillations
    ticket: RITM0012345
    title: MCC5.0 oscillation samples
    description: Why, for whom.
    deadline: 2026-12-20
    priority: high              # low, normal (default), high, critical
    submit: false               # true submits at once instead of saving a draft
    samples:
      - name: numu_fhc
        template: genie-g4-reco
        events: 1000000
        events_per_job: 1000
        parameters: {flux: fhc}
        input_dataset: ""        # optional
        output_dataset: mcc5.0/numu_fhc
"""

from __future__ import annotations

import datetime as dt
import difflib
from pathlib import Path
from typing import Any

import yaml

from .errors import CliError, Exit

PRIORITIES = ("low", "normal", "high", "critical")
REQUIRED = ("experiment", "physics_group", "ticket", "title", "deadline")
OPTIONAL = ("description", "priority", "submit", "samples")
SAMPLE_REQUIRED = ("name", "template", "events", "events_per_job", "output_dataset")
SAMPLE_OPTIONAL = ("parameters", "input_dataset")
MAX_EVENTS = 10**12


def _unknown(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown field {key!r}{hint}; known: {', '.join(known)}"


def _text(data: dict, key: str, where: str, errors: list[str], required: bool) -> str:
    value = data.get(key)
    if value is None or value == "":
        if required:
            errors.append(f"{where}{key}: required")
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        errors.append(f"{where}{key}: must be text, not {type(value).__name__}")
        return ""
    return str(value).strip()


def _count(data: dict, key: str, where: str, errors: list[str]) -> int | None:
    value = data.get(key)
    if value is None:
        errors.append(f"{where}{key}: required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(f"{where}{key}: must be a whole number greater than zero, not {value!r}")
        return None
    if value <= 0:
        errors.append(f"{where}{key}: must be greater than zero, not {value}")
        return None
    if value > MAX_EVENTS:
        errors.append(f"{where}{key}: at most {MAX_EVENTS}")
        return None
    return value


def _deadline(value: Any, errors: list[str], today: dt.date) -> str:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        day = value
    elif isinstance(value, str):
        try:
            day = dt.date.fromisoformat(value.strip())
        except ValueError:
            errors.append(f"deadline: {value!r} is not a date (YYYY-MM-DD)")
            return ""
    else:
        if value is not None:
            errors.append(f"deadline: {value!r} is not a date (YYYY-MM-DD)")
        return ""
    if day < today:
        errors.append(f"deadline: {day} is in the past")
    return day.isoformat()


def _sample(line: Any, index: int, errors: list[str]) -> dict[str, Any]:
    where = f"samples[{index}]."
    if not isinstance(line, dict):
        errors.append(f"samples[{index}]: must be a mapping of name, template, events, ...")
        return {}
    for key in line:
        if key not in SAMPLE_REQUIRED + SAMPLE_OPTIONAL:
            errors.append(
                f"samples[{index}]: {_unknown(str(key), SAMPLE_REQUIRED + SAMPLE_OPTIONAL)}"
            )
    sample: dict[str, Any] = {
        "name": _text(line, "name", where, errors, True),
        "template": line.get("template"),
        "output_dataset": _text(line, "output_dataset", where, errors, True),
        "input_dataset": _text(line, "input_dataset", where, errors, False),
    }
    template = line.get("template")
    if template is None or template == "":
        errors.append(f"{where}template: required (the workflow template's name or id)")
    elif isinstance(template, bool) or not isinstance(template, str | int):
        errors.append(f"{where}template: give the template's name or id, not {template!r}")
    events = _count(line, "events", where, errors)
    per_job = _count(line, "events_per_job", where, errors)
    if events and per_job and per_job > events:
        errors.append(f"{where}events_per_job: {per_job} is more than the events ({events})")
    sample["events"], sample["events_per_job"] = events, per_job
    parameters = line.get("parameters") or {}
    if not isinstance(parameters, dict):
        errors.append(f"{where}parameters: must be a mapping of name: value")
        parameters = {}
    for name, value in parameters.items():
        if isinstance(value, dict | list) or value is None:
            errors.append(
                f"{where}parameters.{name}: must be a single value (text, number, true/false)"
            )
    sample["parameters"] = {str(k): v for k, v in parameters.items()}
    return sample


def validate(data: Any, today: dt.date | None = None) -> dict[str, Any]:
    """The API payload for ``data`` (a parsed request file).

    Raises ``CliError`` (exit 2) listing every problem found, not just the first.
    """
    today = today or dt.date.today()
    if not isinstance(data, dict):
        raise CliError(
            Exit.USAGE, "the request file must be a mapping of fields (experiment, title, ...)"
        )
    errors: list[str] = []
    for key in data:
        if key not in REQUIRED + OPTIONAL:
            errors.append(_unknown(str(key), REQUIRED + OPTIONAL))
    payload: dict[str, Any] = {
        key: _text(data, key, "", errors, True) for key in REQUIRED if key != "deadline"
    }
    if "deadline" not in data or data.get("deadline") in (None, ""):
        errors.append("deadline: required")
    payload["deadline"] = _deadline(data.get("deadline"), errors, today)
    payload["description"] = _text(data, "description", "", errors, False)
    priority = data.get("priority", "normal")
    if priority not in PRIORITIES:
        errors.append(f"priority: {priority!r} is not one of {', '.join(PRIORITIES)}")
    payload["priority"] = priority
    submit = data.get("submit", False)
    if not isinstance(submit, bool):
        errors.append(f"submit: must be true or false, not {submit!r}")
    payload["submit"] = bool(submit)
    samples = data.get("samples") or []
    if not isinstance(samples, list):
        errors.append("samples: must be a list of sample lines")
        samples = []
    payload["samples"] = [_sample(line, i, errors) for i, line in enumerate(samples)]
    names = [s.get("name") for s in payload["samples"] if s.get("name")]
    for name in sorted({n for n in names if names.count(n) > 1}):
        errors.append(f"samples: the name {name!r} is used twice")
    if payload["submit"] and not samples:
        errors.append(
            "samples: a request is submitted with at least one sample (or set submit: false)"
        )
    if errors:
        raise CliError(Exit.USAGE, "the request file has problems; nothing was sent", errors)
    return payload


def load(path: str) -> dict[str, Any]:
    """Read and validate a request file (``-`` reads standard input)."""
    import sys

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(Exit.USAGE, f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CliError(Exit.USAGE, f"{path} is not valid YAML{where}: {problem}") from exc
    return validate(data)

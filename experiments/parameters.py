"""Validation of sample parameters against a workflow template's specification.

Parameters reach jobs as data (a JSON file), never through a shell; still,
string values are restricted to a conservative character set so that a value
copied into a log, a file name or a batch attribute can do no harm.
"""

from __future__ import annotations

import math
import re
from typing import Any

from django.core.exceptions import ValidationError

MAX_STRING_LENGTH = 200
MAX_PARAMETERS = 50
# Whole-string matches (fullmatch): ``$`` alone would also accept a trailing newline.
SAFE_STRING = re.compile(r"[A-Za-z0-9_.,:/+=@%-]*")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
TYPES = ("int", "float", "str", "bool")


def _coerce(name: str, spec: dict, value: Any) -> Any:
    kind = spec.get("type", "str")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
            return value.lower() in {"true", "1", "yes"}
        raise ValidationError(f"{name}: expected true or false, got {value!r}")
    if kind == "int":
        if isinstance(value, bool):
            raise ValidationError(f"{name}: expected a whole number, got {value!r}")
        try:
            number = int(str(value).strip()) if isinstance(value, str) else int(value)
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            raise ValidationError(f"{name}: expected a whole number, got {value!r}") from None
        return _in_range(name, spec, number)
    if kind == "float":
        if isinstance(value, bool):
            raise ValidationError(f"{name}: expected a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ValidationError(f"{name}: expected a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValidationError(f"{name}: must be a finite number")
        return _in_range(name, spec, number)
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValidationError(f"{name}: expected text, got {type(value).__name__}")
    text = str(value)
    if len(text) > MAX_STRING_LENGTH:
        raise ValidationError(f"{name}: at most {MAX_STRING_LENGTH} characters")
    if not SAFE_STRING.fullmatch(text):
        raise ValidationError(f"{name}: only letters, digits and _ . , : / + = @ % - are allowed")
    return text


def _in_range(name: str, spec: dict, number):
    low, high = spec.get("min"), spec.get("max")
    if low is not None and number < low:
        raise ValidationError(f"{name}: must be at least {low}")
    if high is not None and number > high:
        raise ValidationError(f"{name}: must be at most {high}")
    return number


def validate_parameters(specs: dict[str, dict], values: dict[str, Any] | None) -> dict[str, Any]:
    """Return ``values`` coerced to their declared types, with defaults filled in.

    Raises ``ValidationError`` listing every problem: unknown names, wrong
    types, out-of-range numbers, values outside ``choices``, unsafe strings.
    """
    values = values or {}
    if not isinstance(values, dict):
        raise ValidationError("parameters must be a mapping of name to value")
    if len(values) > MAX_PARAMETERS:
        raise ValidationError(f"at most {MAX_PARAMETERS} parameters")
    errors: list[str] = []
    cleaned: dict[str, Any] = {}
    for name in values:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            errors.append(f"{str(name)[:40]!r}: not a valid parameter name")
        elif name not in specs:
            known = ", ".join(sorted(specs)) or "none"
            errors.append(f"{name}: unknown parameter (the template accepts: {known})")
    for name, spec in specs.items():
        if name in values:
            try:
                value = _coerce(name, spec, values[name])
            except ValidationError as exc:
                errors.extend(exc.messages)
                continue
        elif "default" in spec:
            value = spec["default"]
        else:
            errors.append(f"{name}: required by the template")
            continue
        choices = spec.get("choices")
        if choices is not None and value not in choices:
            errors.append(f"{name}: must be one of {', '.join(map(str, choices))}")
            continue
        cleaned[name] = value
    if errors:
        raise ValidationError(errors)
    return cleaned


def validate_spec(specs: Any) -> None:
    """Check a stage template's parameter specification itself."""
    if not isinstance(specs, dict):
        raise ValidationError("parameters must be a mapping of name to specification")
    for name, spec in specs.items():
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ValidationError(f"{name!r}: not a valid parameter name")
        if not isinstance(spec, dict) or spec.get("type", "str") not in TYPES:
            raise ValidationError(f"{name}: type must be one of {', '.join(TYPES)}")
        if "default" in spec:
            _coerce(name, spec, spec["default"])

"""The API's JSON parser: bodies that no endpoint could take are refused (400) in one place.

DRF's ``JSONParser`` hands ``json`` whatever arrives. Three kinds of body
then fail later as a 500 instead of a 400 naming the problem: nesting deep
enough to exhaust the interpreter's recursion (``RecursionError`` in the
decoder or in any code walking the result), integers beyond what a 64-bit
column holds (``OverflowError`` or a database error where they are stored
or compared), and NUL characters (PostgreSQL cannot store or even compare
a text holding one). ``BoundedJSONParser`` refuses all three before a view
sees the body; it is the default parser (``REST_FRAMEWORK`` in settings).
"""

from __future__ import annotations

import codecs
import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from . import limits


class BodyError(ValueError):
    """A body out of bounds; ``field`` is the top-level key it is under (``None``: the body)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def _constant(name: str) -> float:
    # ``json`` accepts NaN and Infinity, which JSON does not; no field takes them.
    raise ValueError(f"{name} is not a JSON number")


def _problem(value: Any) -> str | None:
    if isinstance(value, str):
        return "NUL characters are not allowed" if "\x00" in value else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and not limits.INT64_MIN <= value <= limits.INT64_MAX:
        return (
            f"an integer of {len(str(abs(value)))} digits is beyond a 64-bit integer "
            f"({limits.INT64_MIN} to {limits.INT64_MAX})"
        )
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "the number is beyond a 64-bit float"
    return None


def check_json(value: Any, max_depth: int) -> None:
    """Raise ``BodyError`` for nesting deeper than ``max_depth``, an integer beyond 64 bits,
    a number too large for a float, or a NUL character, naming where (``samples[0].events``).

    Iterative (a stack of (value, path, depth)), so checking cannot itself recurse too deep.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        field = path.split(".", 1)[0].split("[", 1)[0] or None
        if isinstance(item, dict | list):
            if depth > max_depth:
                raise BodyError(
                    f"{path or 'the body'}: nested deeper than {max_depth} levels "
                    "(OPOS_JSON_MAX_DEPTH)",
                    field,
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    if "\x00" in key:
                        raise BodyError(
                            f"{path or 'the body'}: NUL characters are not allowed in a key",
                            field or key.replace("\x00", ""),
                        )
                    stack.append((child, f"{path}.{key}" if path else key, depth + 1))
            else:
                stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
        elif problem := _problem(item):
            raise BodyError(f"{path}: {problem}" if path else problem, field)


def load_json(text: str | bytes) -> Any:
    """``json.loads`` within the bounds; ``ValueError`` (``BodyError``) naming what is wrong."""
    try:
        data = json.loads(text, parse_constant=_constant)
    except RecursionError:
        raise BodyError(
            f"nested deeper than {limits.json_max_depth()} levels (OPOS_JSON_MAX_DEPTH)"
        ) from None
    check_json(data, limits.json_max_depth())
    return data


class BoundedJSONParser(JSONParser):
    """``JSONParser`` that refuses deep nesting, out-of-range numbers and NUL characters."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            return load_json(codecs.getreader(encoding)(stream).read())
        except BodyError as exc:
            # Keyed by the field, as the serializers' 400s are: clients show it next to it.
            raise ParseError({exc.field: [str(exc)]} if exc.field else str(exc)) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None

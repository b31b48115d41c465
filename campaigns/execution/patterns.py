"""Operators' stderr patterns (``FailureRule.stderr_pattern``), compiled and run with a guard.

A regular expression can take exponential time on a crafted text ("catastrophic
backtracking": ``(a+)+$`` against ``aaaa...!``), and the text a pattern is run on, a job's
stderr tail, is written by experiment code. So patterns are compiled with the ``regex``
module, whose matching takes a timeout, and:

* at input, a pattern is refused when it cannot get through a set of adversarial probes
  (runs of each character it names, and of common ones, as long as a stderr tail, with a
  character at the end that forces every alternative to be tried) within
  ``PROBE_TIMEOUT_S`` each;
* at run time every search is bounded by ``OPOS_FAILURE_PATTERN_TIMEOUT_MS``: a search that
  runs out counts as no match (and is logged), so one bad pattern can never stall finalize.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import regex
from django.conf import settings

log = logging.getLogger(__name__)

PROBE_LENGTH = 4096  # the stderr tail classification reads (failures.TAIL_BYTES)
PROBE_TIMEOUT_S = 0.25
COMMON = ["a", "A", "x", "0", " ", "\t", "\n", ".", ",", "-", "_", ":", "/", "word ", "aB", "a0"]


class UnsafePattern(ValueError):
    """A pattern refused: not a regular expression, or too slow on adversarial text."""


def _probes(pattern: str) -> list[str]:
    # Every printable character the pattern names (literals, class members, escapes' letters)
    # plus common ones; each repeated to the tail's length, then a character no pattern
    # expects, so that a match attempt must fail after trying what it can.
    units = list(dict.fromkeys([*COMMON, *(c for c in pattern if c.isprintable())]))
    return [(unit * (PROBE_LENGTH // len(unit) + 1))[:PROBE_LENGTH] + "\x00" for unit in units]


def compile_pattern(pattern: str) -> regex.Pattern:
    """Compile ``pattern`` (``re`` syntax); ``UnsafePattern`` names what is wrong."""
    try:
        compiled = regex.compile(pattern)
    except (regex.error, re.error, TypeError, ValueError) as exc:
        raise UnsafePattern(f"not a regular expression: {exc}") from None
    return compiled


def check_pattern(pattern: str) -> regex.Pattern:
    """Compile ``pattern`` and try it on adversarial probes; ``UnsafePattern`` if too slow."""
    compiled = compile_pattern(pattern)
    for probe in _probes(pattern):
        try:
            compiled.search(probe, timeout=PROBE_TIMEOUT_S)
        except TimeoutError:
            raise UnsafePattern(
                "too slow on some texts (nested or overlapping repetition such as (a+)+ "
                "backtracks exponentially); simplify the pattern"
            ) from None
    return compiled


def guarded_search(pattern: Any, text: str) -> bool:
    """Whether ``pattern`` is found in ``text``, giving up (no match) after the run-time limit.

    ``pattern`` is a ``regex`` pattern (operators' rules) or an ``re`` one (built-in rules,
    written here and known to be linear).
    """
    if not isinstance(pattern, regex.Pattern):
        return pattern.search(text) is not None
    limit = int(getattr(settings, "OPOS_FAILURE_PATTERN_TIMEOUT_MS", 500)) / 1000
    try:
        return pattern.search(text, timeout=limit) is not None
    except TimeoutError:
        log.warning(
            "failure rule pattern %r gave up after %.2f s: no match", pattern.pattern, limit
        )
        return False

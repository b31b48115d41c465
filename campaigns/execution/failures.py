"""Why a job failed, and whether and how it is tried again.

A failure is classified from its exit code, the tail of its stderr and what the batch
system said (Slurm's ``OUT_OF_MEMORY``, ``TIMEOUT``), by rules: the template's own
``FailureRule`` rows first, then rules without a template, then :data:`DEFAULT_RULES`:

* the wrapper's refusals (code checksum mismatch, unreadable job description) and the
  site's never-retried exit codes (``OPOS_NEVER_RETRY_EXIT_CODES``): never retried;
* out of memory: retried with more memory (``factor`` x, up to ``OPOS_MAX_MEMORY_MB``);
* walltime exceeded: retried with more walltime (up to ``OPOS_MAX_WALLTIME_S``);
* output area full: retried after the backoff (space may be freed meanwhile);
* preempted, or its node failed (Slurm's ``PREEMPTED``, ``NODE_FAIL``, ``BOOT_FAIL``): retried
  as is (not the job's fault);
* killed by a signal, once the batch system's reason and the stderr had their say (a job
  killed for memory is usually reported as such, and then is out of memory): SIGKILL (exit
  137) retried with more memory, since on a batch system it is mostly the memory limit
  (or a preemption the system did not report); SIGTERM, SIGINT, SIGHUP (143, 130, 129):
  terminated, retried as is; a crash (SIGSEGV 139, SIGABRT 134, SIGBUS, SIGFPE, SIGILL)
  retried once, since the same input mostly crashes the same way;
* lost by the batch system, or anything else: retried as is.

Exit codes above 128 are named as the signal ``code - 128`` (the shell's convention, which
the wrapper and the job shim follow), see :func:`describe_exit`.

Every retry is a new job (``attempt + 1``, ``parent`` set), up to ``max_attempts`` in all
(``OPOS_MAX_ATTEMPTS`` unless the rule says otherwise), after an exponential backoff with
jitter. Cancelled jobs are not retried (someone meant it), nor are jobs of a campaign that
is no longer open.
"""

from __future__ import annotations

import math
import random
import re
import signal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Q

from ..batch import BatchState
from ..choices import FailureClass
from ..models import FailureRule, RetryAction
from .patterns import UnsafePattern, compile_pattern, guarded_search
from .wrapper import (
    EXIT_BAD_JOB,
    EXIT_CODE_MISMATCH,
    EXIT_CODE_MISSING,
    EXIT_OUTPUT_AREA,
    PREFIX,
)

EXIT_PYTHON_FLUSH = 120
"""Python's exit status when flushing stdout/stderr at shutdown fails."""

SIGNAL_MEANING: dict[signal.Signals, str] = {
    signal.SIGKILL: "killed: by the batch system for memory, or preemption",
    signal.SIGTERM: "terminated",
    signal.SIGINT: "interrupted",
    signal.SIGHUP: "hung up",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "floating-point exception",
    signal.SIGILL: "illegal instruction",
    signal.SIGXCPU: "CPU time limit exceeded",
    signal.SIGXFSZ: "file size limit exceeded",
    signal.SIGPIPE: "broken pipe",
}


def signal_of(exit_code: int | None) -> signal.Signals | None:
    """The signal an exit status stands for: ``128 + N`` (the shell's convention, kept by the
    wrapper and the job shim) or ``-N`` (Python's for a child killed by signal N)."""
    if exit_code is None:
        return None
    number = -exit_code if exit_code < 0 else exit_code - 128 if exit_code > 128 else 0
    try:
        return signal.Signals(number) if number > 0 else None
    except ValueError:
        return None


def describe_exit(exit_code: int | None) -> str:
    """``137`` -> ``"137 (SIGKILL: killed: by the batch system for memory, or preemption)"``:
    an exit status with the signal it stands for, when it stands for one."""
    if exit_code is None:
        return ""
    sig = signal_of(exit_code)
    if sig is None:
        return str(exit_code)
    meaning = SIGNAL_MEANING.get(sig)
    return f"{exit_code} ({sig.name}: {meaning})" if meaning else f"{exit_code} ({sig.name})"


def _codes(*signals: signal.Signals) -> frozenset[int]:
    """The exit statuses of jobs killed by ``signals``, in both conventions."""
    return frozenset(c for s in signals for c in (128 + s.value, -s.value))


@dataclass(frozen=True)
class Rule:
    """One classification rule (the in-memory form of a ``FailureRule``)."""

    failure_class: str
    action: str
    exit_codes: frozenset[int] = frozenset()
    stderr: Any = None  # re.Pattern (built-in rules) or regex.Pattern (operators' rules)
    batch_reason: str = ""
    max_attempts: int | None = None
    factor: float = 1.5
    description: str = ""

    def matches(self, exit_code: int | None, stderr_tail: str, reason: str) -> bool:
        if not (self.exit_codes or self.stderr or self.batch_reason):
            return False
        if self.exit_codes and exit_code not in self.exit_codes:
            return False
        if self.batch_reason and self.batch_reason.lower() not in reason.lower():
            return False
        return not (self.stderr and not guarded_search(self.stderr, stderr_tail))

    @classmethod
    def from_model(cls, rule: FailureRule) -> Rule:
        return cls(
            failure_class=rule.failure_class,
            action=rule.action,
            exit_codes=frozenset(rule.exit_codes or ()),
            stderr=compile_pattern(rule.stderr_pattern) if rule.stderr_pattern else None,
            batch_reason=rule.batch_reason,
            max_attempts=rule.max_attempts,
            factor=rule.factor,
            description=rule.description,
        )


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        FailureClass.CODE_MISMATCH,
        RetryAction.NEVER,
        frozenset({EXIT_CODE_MISMATCH, EXIT_CODE_MISSING}),
        description="the registered production code changed or cannot be read",
    ),
    Rule(
        FailureClass.FATAL,
        RetryAction.NEVER,
        frozenset({EXIT_BAD_JOB}),
        description="the job description could not be read",
    ),
    Rule(
        FailureClass.STORAGE,
        RetryAction.RETRY,
        frozenset({EXIT_OUTPUT_AREA}),
        description="the outputs (or the job's folder) could not be written",
    ),
    Rule(
        FailureClass.STORAGE,
        RetryAction.RETRY,
        stderr=re.compile(r"No space left on device|Disk quota exceeded|Read-only file system"),
        description="the output area is full or read-only",
    ),
    Rule(
        # Python's own status when it cannot flush stdout or stderr at exit: with the logs in
        # the job's folder, that folder's filesystem is full (and stderr could not say so).
        # Seen when the output area filled up under running jobs (tests/faults/).
        FailureClass.STORAGE,
        RetryAction.RETRY,
        frozenset({EXIT_PYTHON_FLUSH}),
        description="the job could not write its logs at exit (output area full?)",
    ),
    Rule(
        FailureClass.OUT_OF_MEMORY,
        RetryAction.MORE_MEMORY,
        batch_reason="OUT_OF_MEMORY",
        description="the batch system killed it for its memory use",
    ),
    Rule(
        FailureClass.OUT_OF_MEMORY,
        RetryAction.MORE_MEMORY,
        stderr=re.compile(
            r"out of memory|oom[-_ ]kill|MemoryError|std::bad_alloc|Cannot allocate memory",
            re.IGNORECASE,
        ),
        description="it ran out of memory",
    ),
    Rule(
        FailureClass.WALLTIME,
        RetryAction.MORE_WALLTIME,
        batch_reason="TIMEOUT",
        description="it ran past its walltime limit",
    ),
    Rule(
        FailureClass.WALLTIME,
        RetryAction.MORE_WALLTIME,
        stderr=re.compile(r"DUE TO TIME LIMIT|time limit exceeded|walltime exceeded", re.I),
        description="it ran past its walltime limit",
    ),
    # What the batch system says comes before the exit status: Slurm reports a preempted
    # job as PREEMPTED (its exit status is the SIGTERM or SIGKILL that ended it).
    Rule(
        FailureClass.PREEMPTED,
        RetryAction.RETRY,
        batch_reason="PREEMPTED",
        description="the batch system preempted it for other work",
    ),
    Rule(
        FailureClass.NODE_FAILURE,
        RetryAction.RETRY,
        batch_reason="NODE_FAIL",
        description="the node it ran on failed",
    ),
    Rule(
        FailureClass.NODE_FAILURE,
        RetryAction.RETRY,
        batch_reason="BOOT_FAIL",
        description="the node it was given failed to boot",
    ),
    # Signals, after the reasons and stderr patterns above (a SIGKILL for memory that the
    # batch system or the kernel reported is out of memory, not "killed").
    Rule(
        FailureClass.KILLED,
        RetryAction.MORE_MEMORY,
        _codes(signal.SIGKILL),
        description="killed by SIGKILL: by the batch system for memory, or preemption",
    ),
    Rule(
        FailureClass.TERMINATED,
        RetryAction.RETRY,
        _codes(signal.SIGTERM, signal.SIGINT, signal.SIGHUP),
        description="terminated by a signal (SIGTERM, SIGINT or SIGHUP)",
    ),
    Rule(
        FailureClass.CRASH,
        RetryAction.RETRY,
        _codes(signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL),
        # Once more only: the same input mostly crashes the same way, a bad node does not.
        max_attempts=2,
        description="crashed",
    ),
)


@dataclass(frozen=True)
class Verdict:
    """A classified failure and what happens next."""

    failure_class: str
    reason: str
    retry: bool
    memory_mb: int | None = None  # the retry's request, when it changes
    walltime_s: int | None = None
    delay_s: float = 0.0


def load_rules(template_ids: Iterable[int | None]) -> dict[int | None, list[Rule]]:
    """Rules by template id (one query); rules without a template under ``None``."""
    ids = sorted({t for t in template_ids if t is not None})
    rules: dict[int | None, list[Rule]] = {None: []}
    for rule in FailureRule.objects.filter(Q(template_id__in=ids) | Q(template__isnull=True)):
        try:
            rules.setdefault(rule.template_id, []).append(Rule.from_model(rule))
        except UnsafePattern:
            continue  # a broken pattern is refused on save; never let one stop finalize
    return rules


def rules_for(template_id: int | None, loaded: dict[int | None, list[Rule]]) -> list[Rule]:
    own = loaded.get(template_id, []) if template_id is not None else []
    return [*own, *loaded.get(None, []), *DEFAULT_RULES]


def classify(
    outcome: str,
    exit_code: int | None,
    tail: str,
    batch_reason: str,
    rules: Sequence[Rule] = DEFAULT_RULES,
) -> Rule:
    """The rule a failure falls under (a catch-all when none matches)."""
    if outcome == BatchState.CANCELLED:
        return Rule(FailureClass.CANCELLED, RetryAction.NEVER, description="it was cancelled")
    for rule in rules:
        if rule.matches(exit_code, tail, batch_reason):
            return rule
    never = set(getattr(settings, "OPOS_NEVER_RETRY_EXIT_CODES", []) or [])
    if exit_code is not None and exit_code in never:
        return Rule(FailureClass.FATAL, RetryAction.NEVER, description="exit code never retried")
    if outcome == BatchState.LOST:
        return Rule(FailureClass.LOST, RetryAction.RETRY, description="the batch system lost it")
    return Rule(FailureClass.OTHER, RetryAction.RETRY, description="it failed")


def backoff_s(attempt: int) -> float:
    """Delay before attempt ``attempt + 1``: doubling from the base, capped, with jitter."""
    base = float(getattr(settings, "OPOS_RETRY_BACKOFF_S", 60))
    cap = float(getattr(settings, "OPOS_RETRY_BACKOFF_MAX_S", 3600))
    delay = min(base * 2 ** max(attempt - 1, 0), cap)
    # Jitter spreads retries of a failed array so they do not all come back at once.
    return delay * random.uniform(0.5, 1.0)  # noqa: S311 - not for security


def _summary(rule: Rule, exit_code: int | None, batch_reason: str, tail: str) -> str:
    parts = [rule.description or str(rule.failure_class)]
    if exit_code is not None:
        sig = signal_of(exit_code)
        parts.append(f"exit code {exit_code}" + (f" ({sig.name})" if sig else ""))
    # Backends that resolve an ended job from its folder say "exit code N" too.
    if batch_reason and batch_reason not in parts and batch_reason != f"exit code {exit_code}":
        parts.append(batch_reason)
    wrapper = [line for line in tail.splitlines() if line.startswith(PREFIX)]
    if wrapper:
        parts.append(wrapper[-1])
    return "; ".join(parts)[:500]


def decide(
    *,
    outcome: str,
    exit_code: int | None,
    tail: str,
    batch_reason: str,
    attempt: int,
    memory_mb: int,
    walltime_s: int,
    rules: Sequence[Rule] = DEFAULT_RULES,
    may_retry: bool = True,
) -> Verdict:
    """Classify one failure and decide its retry.

    ``memory_mb``/``walltime_s`` are what the failed attempt asked for; ``may_retry`` is
    False when the campaign is no longer open.
    """
    rule = classify(outcome, exit_code, tail, batch_reason, rules)
    reason = _summary(rule, exit_code, batch_reason, tail)
    limit = rule.max_attempts or int(getattr(settings, "OPOS_MAX_ATTEMPTS", 3))
    if rule.action == RetryAction.NEVER or not may_retry:
        return Verdict(rule.failure_class, reason, False)
    if attempt >= limit:
        return Verdict(rule.failure_class, f"{reason}; gave up after {attempt} attempts", False)
    memory, walltime = None, None
    if rule.action == RetryAction.MORE_MEMORY:
        ceiling = int(getattr(settings, "OPOS_MAX_MEMORY_MB", 64000))
        memory = min(math.ceil(memory_mb * rule.factor), ceiling)
        if memory <= memory_mb:
            return Verdict(rule.failure_class, f"{reason}; already at {ceiling} MB", False)
    elif rule.action == RetryAction.MORE_WALLTIME:
        ceiling = int(getattr(settings, "OPOS_MAX_WALLTIME_S", 7 * 86400))
        walltime = min(math.ceil(walltime_s * rule.factor), ceiling)
        if walltime <= walltime_s:
            return Verdict(rule.failure_class, f"{reason}; already at {ceiling} s", False)
    return Verdict(rule.failure_class, reason, True, memory, walltime, backoff_s(attempt))

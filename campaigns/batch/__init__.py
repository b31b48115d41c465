"""Batch backends behind one small interface (see :mod:`campaigns.batch.base`).

``get_backend("local" | "slurm" | "htcondor", **options)`` returns a backend; backends are
imported lazily so that, say, the local backend works on a machine without the HTCondor
bindings.
"""

from __future__ import annotations

import importlib

from .base import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    ArraySpec,
    BackendError,
    BackendUnavailable,
    BatchBackend,
    BatchState,
    ControlAnswer,
    ControlAnswers,
    ControlOutcome,
    JobRef,
    JobStatus,
    JobUsage,
    Placement,
    StatusAnswer,
)

BACKENDS: dict[str, str] = {
    "local": "campaigns.batch.local:LocalBackend",
    "slurm": "campaigns.batch.slurm:SlurmBackend",
    "htcondor": "campaigns.batch.htcondor:HTCondorBackend",
}
"""Backend name -> ``module:class``."""


def get_backend(name: str, **options: object) -> BatchBackend:
    """Build the backend called ``name`` with its options (``slots``, ``spool_dir``, ...)."""
    try:
        module_name, _, class_name = BACKENDS[name].partition(":")
    except KeyError:
        raise ValueError(
            f"unknown batch backend {name!r}; choose from {sorted(BACKENDS)}"
        ) from None
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**options)


__all__ = [
    "ACTIVE_STATES",
    "BACKENDS",
    "TERMINAL_STATES",
    "ArraySpec",
    "BackendError",
    "BackendUnavailable",
    "BatchBackend",
    "BatchState",
    "ControlAnswer",
    "ControlAnswers",
    "ControlOutcome",
    "JobRef",
    "JobStatus",
    "JobUsage",
    "Placement",
    "StatusAnswer",
    "get_backend",
]

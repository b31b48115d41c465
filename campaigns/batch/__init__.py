"""Batch backends behind one small interface (see :mod:`campaigns.batch.base`).

``REGISTRY`` is the one list of backends: every other list (the names the settings check
accepts, the scheduler's default capacities) is derived from it, and its names are exactly
the choices of ``BackendName`` (``requests_app/choices.py``, which the tables store), as a
test checks. ``get_backend(name, **options)`` returns a backend; backends are imported
lazily so that, say, the local backend works on a machine without the HTCondor bindings.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from experiments.choices import BackendName

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


@dataclass(frozen=True)
class Registration:
    """Where a backend's class is, and the jobs in flight it takes unless configured
    otherwise (``OPOS_BACKEND_CAPACITY``, read by ``campaigns.conf.backend_capacity``)."""

    path: str  # module:class
    capacity: int


REGISTRY: dict[str, Registration] = {
    BackendName.LOCAL.value: Registration("campaigns.batch.local:LocalBackend", 4),
    BackendName.SLURM.value: Registration("campaigns.batch.slurm:SlurmBackend", 1000),
    BackendName.HTCONDOR.value: Registration("campaigns.batch.htcondor:HTCondorBackend", 5000),
}

BACKENDS: dict[str, str] = {name: entry.path for name, entry in REGISTRY.items()}
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
    "REGISTRY",
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
    "Registration",
    "StatusAnswer",
    "get_backend",
]

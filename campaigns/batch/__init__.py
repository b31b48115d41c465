"""Batch backends behind one small interface (see :mod:`campaigns.batch.base`).

``REGISTRY`` is the one list of backend *kinds*: its names are exactly those of
``BackendName`` (``experiments/choices.py``), as a test checks. What the tables store is an
*endpoint* name (``experiments/endpoints.py``): an entry of ``OPOS_BACKEND_OPTIONS`` named
after a kind, or named freely with a ``"kind"`` option (two Slurm clusters side by side);
its default capacity is its kind's. ``get_backend(kind, **options)`` returns a backend;
backends are imported lazily so that, say, the local backend works on a machine without
the HTCondor bindings. ``campaigns.execution.backends.backend(endpoint)`` builds one from
an endpoint's options.
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
    records_option: str | None = None
    """The option naming the folder of the backend's own records, which two endpoints of
    the kind must not share (Slurm's job ids repeat from one cluster to another)."""


REGISTRY: dict[str, Registration] = {
    BackendName.LOCAL.value: Registration("campaigns.batch.local:LocalBackend", 4, "spool_dir"),
    BackendName.SLURM.value: Registration("campaigns.batch.slurm:SlurmBackend", 1000, "state_dir"),
    BackendName.HTCONDOR.value: Registration("campaigns.batch.htcondor:HTCondorBackend", 5000),
}

BACKENDS: dict[str, str] = {name: entry.path for name, entry in REGISTRY.items()}
"""Backend kind -> ``module:class``."""


def get_backend(name: str, **options: object) -> BatchBackend:
    """Build a backend of kind ``name`` with its options (``slots``, ``spool_dir``, ...)."""
    try:
        module_name, _, class_name = BACKENDS[name].partition(":")
    except KeyError:
        raise ValueError(
            f"unknown kind of batch backend {name!r}; choose from {sorted(BACKENDS)}"
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

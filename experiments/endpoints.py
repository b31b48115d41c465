"""Batch endpoints: the names the stored backend fields hold, read from the settings.

A *kind* is a batch system the code can speak to (``BackendName``: local, slurm, htcondor;
``campaigns.batch.REGISTRY`` maps each to its class). An *endpoint* is one place work is
submitted to: an entry of ``OPOS_BACKEND_OPTIONS``. Its name is either a kind (``"slurm"``:
the kind's own endpoint, as before endpoints existed) or any other name with a ``"kind"``
option, e.g. a second cluster::

    OPOS_BACKEND_OPTIONS["slurm-b"] = {"kind": "slurm", "slurm_conf": "/etc/slurm-b/slurm.conf"}

``Experiment.default_backend``, ``Campaign.backend``, ``Submission.backend``,
``Job.backend`` and ``Partition.backend`` hold endpoint names; the list of valid names is
``endpoint_names()``, read from the settings on every call (so tests may override them),
and every form, serializer and service checks a name with ``endpoint_problem`` (or the
model fields' validator, ``validate_endpoint``), whose message names the configured
endpoints.

A named endpoint starts from the options of its kind's own entry (the batch account, the
timeout, a local sandbox's hidden paths: what keeps jobs away from the service's secrets
must not be lost by naming a second endpoint) except those that say *where* work goes
(``PLACE_OPTIONS``); its own options come on top.

This module is in the foundation layer so that experiments (and intake) can validate the
names without knowing execution.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from .choices import BackendName

NAME_MAX_LENGTH = 32
"""The stored backend fields' length."""

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
"""An endpoint name: lower case, digits, ``-`` and ``_``; it ends up in file paths, lock
keys, metric labels and environment variable names (``OPOS_<NAME>_CAPACITY``)."""

PLACE_OPTIONS = frozenset(
    {
        # Which cluster or pool, and the backend's records about it.
        "slurm_conf",
        "state_dir",
        "spool_dir",
        "schedd_name",
        "pool",
        "max_array_size",
        "slots",
        # The site's placement defaults (campaigns.services.controls.placement_of).
        "partition",
        "account",
        "qos",
        "requirements",
    }
)
"""Options of a kind's entry a named endpoint of that kind does not inherit: they say where
work goes, so one cluster's must not leak into another's."""


@dataclass(frozen=True)
class Endpoint:
    name: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict, compare=False)
    """What the backend is built with (and the site's placement defaults), ``kind`` left out."""

    @property
    def label(self) -> str:
        return label(self.name, self.kind)


def _configured() -> dict[str, Any]:
    return dict(getattr(settings, "OPOS_BACKEND_OPTIONS", None) or {})


def entry_problem(name: str, options: Any) -> str | None:
    """What is wrong with one entry of ``OPOS_BACKEND_OPTIONS`` (None: nothing)."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        return (
            f"{name!r} is not a valid endpoint name (lower-case letters, digits, '-' and '_', "
            f"starting with a letter, at most {NAME_MAX_LENGTH} characters)"
        )
    if options is not None and not isinstance(options, dict):
        return f"{name!r}: its options must be a mapping"
    kind = (options or {}).get("kind") or name
    if kind not in BackendName.values:
        if kind == name:
            return (
                f"{name!r} is not a kind of batch system ({', '.join(BackendName.values)}): "
                'give it a "kind" option'
            )
        return f"{name!r}: kind {kind!r} is not one of {', '.join(BackendName.values)}"
    if name in BackendName.values and kind != name:
        return f"{name!r} is the name of a kind: its kind must be {name!r}, not {kind!r}"
    return None


# The last settings read and what they gave: the scheduler asks for every campaign it
# loads (800 calls for one projection), and the settings change only in tests.
_last: tuple[Any, Any, dict[str, Endpoint]] | None = None


def endpoints() -> dict[str, Endpoint]:
    """Every valid configured endpoint, by name, in the settings' order (invalid entries
    are left out here and reported by ``manage.py check``, campaigns.E002)."""
    global _last
    raw = getattr(settings, "OPOS_BACKEND_OPTIONS", None)
    last = _last
    # The same object with the same content (a test may replace it, or change it in place).
    if last is not None and last[0] is raw and last[1] == raw:
        return dict(last[2])
    found = _read()
    _last = (raw, copy.deepcopy(raw), found)
    return dict(found)


def _read() -> dict[str, Endpoint]:
    configured = _configured()
    found: dict[str, Endpoint] = {}
    for name, raw in configured.items():
        if entry_problem(name, raw):
            continue
        own = dict(raw or {})
        kind = own.pop("kind", None) or name
        inherited: dict[str, Any] = {}
        if name != kind:
            base = configured.get(kind)
            if isinstance(base, dict):
                inherited = {
                    k: v for k, v in base.items() if k not in PLACE_OPTIONS and k != "kind"
                }
        found[name] = Endpoint(name, kind, {**inherited, **own})
    return found


def endpoint_names() -> list[str]:
    """The names the stored backend fields may hold."""
    return list(endpoints())


def get(name: str) -> Endpoint:
    """The endpoint called ``name``; ``ValueError`` naming the configured ones otherwise."""
    found = endpoints().get(name)
    if found is None:
        raise ValueError(endpoint_problem(name))
    return found


def kind_of(name: str) -> str:
    """The kind of endpoint ``name`` (a kind's own name when it is not configured)."""
    found = endpoints().get(name)
    return found.kind if found else name


def endpoint_problem(name: str) -> str | None:
    """None when ``name`` is a configured endpoint, else the refusal, naming them all."""
    if name in endpoints():
        return None
    names = ", ".join(endpoint_names()) or "none"
    return f"{name!r} is not a configured batch endpoint; the configured endpoints are: {names}"


def validate_endpoint(value: str) -> None:
    """Model field validator: ``value`` is a configured endpoint."""
    problem = endpoint_problem(value)
    if problem:
        raise ValidationError(problem, code="invalid_choice")


def label(name: str, kind: str | None = None) -> str:
    """How pages show an endpoint: a kind's own endpoint by the kind's label (``Slurm``),
    any other by its name and kind (``slurm-b (Slurm)``)."""
    if not name:
        return ""
    kind = kind or kind_of(name)
    kind_label = BackendName(kind).label if kind in BackendName.values else kind
    return kind_label if name == kind else f"{name} ({kind_label})"


def choices() -> list[tuple[str, str]]:
    """(name, label) of every endpoint, for forms' select boxes."""
    return [(e.name, e.label) for e in endpoints().values()]

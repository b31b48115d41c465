"""Reading several batch endpoints from the environment, for ``opos/settings.py``.

``OPOS_BATCH_ENDPOINTS`` is a JSON object of named entries, each with its ``kind`` and its
own options, added to ``OPOS_BACKEND_OPTIONS`` (what an endpoint is, and what a named one
takes from its kind's entry, is ``experiments/endpoints.py``). Standard library and Django's
``ImproperlyConfigured`` only: the settings module imports it before any app is loaded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

ENDPOINT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
"""experiments/endpoints.py: NAME_RE (the name becomes a folder, a lock key and part of
environment variable names)."""

RECORDS_OPTION = {"slurm": "state_dir", "local": "spool_dir"}
"""campaigns.batch.REGISTRY's ``records_option`` of each kind."""

EXAMPLE = '{"slurm-b": {"kind": "slurm", "slurm_conf": "/etc/slurm-b/slurm.conf"}}'


def env_key(name: str) -> str:
    """An endpoint's part of an environment variable's name: slurm-b -> SLURM_B."""
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def batch_endpoints(
    raw: str, kinds: dict[str, dict[str, Any]], records_root: Path
) -> tuple[dict[str, dict[str, Any]], dict[str, int], dict[str, str]]:
    """``OPOS_BATCH_ENDPOINTS`` (``raw``) as (options, capacities, job links) by endpoint.

    ``kinds`` are the entries configured already (the kinds' own endpoints): an entry named
    after one adds to it. A new Slurm or local endpoint keeps its records in
    ``records_root/<name>`` unless it names a folder. ``capacity`` and ``job_url`` in an
    entry are its ``OPOS_BACKEND_CAPACITY`` and ``OPOS_BATCH_JOB_URL``, not backend options.
    """
    if not raw:
        return {}, {}, {}
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"OPOS_BATCH_ENDPOINTS is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict) or not all(isinstance(v, dict) for v in parsed.values()):
        raise ImproperlyConfigured(
            f"OPOS_BATCH_ENDPOINTS must be a JSON object of objects, e.g. {EXAMPLE}"
        )
    options: dict[str, dict[str, Any]] = {}
    capacities: dict[str, int] = {}
    links: dict[str, str] = {}
    for name, given in parsed.items():
        if not ENDPOINT_NAME.match(name):
            raise ImproperlyConfigured(
                f"OPOS_BATCH_ENDPOINTS: {name!r} is not a valid endpoint name (lower-case "
                "letters, digits, '-' and '_', starting with a letter, at most 32 characters)"
            )
        entry = dict(given)
        if "capacity" in entry:
            try:
                capacities[name] = int(entry.pop("capacity"))
            except (TypeError, ValueError):
                raise ImproperlyConfigured(
                    f"OPOS_BATCH_ENDPOINTS: the capacity of {name!r} must be a whole number"
                ) from None
        if "job_url" in entry:
            links[name] = str(entry.pop("job_url") or "")
        records = RECORDS_OPTION.get(entry.get("kind") or name)
        if records and name not in kinds and records not in entry:
            entry[records] = str(records_root / name)
        options[name] = {**kinds.get(name, {}), **entry}
    return options, capacities, links

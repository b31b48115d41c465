"""The batch backends execution talks to, built from ``OPOS_BACKEND_OPTIONS``, and job paths.

Execution names a backend by its *endpoint* (``experiments/endpoints.py``): the name a
campaign, submission and job store. ``backend(endpoint)`` builds the endpoint's kind with
the endpoint's options, so ``"slurm"`` and ``"slurm-b"`` are two Slurm backends, each with
its own ``slurm_conf`` and records. Backends are built once per process and options (they
keep nothing but configuration and caches such as Slurm's ``scontrol show config``);
several can be active at once, one per experiment or campaign. Work folders live under
``OPOS_WORK_DIR``: ``c<campaign>/s<stage>/<submission token>/<element>``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.conf import settings

from experiments import endpoints

from ..batch import REGISTRY, BackendError, BatchBackend, get_backend
from ..batch.base import default_state_dir

# Options that belong to each submission (ArraySpec), not to the backend object: the site
# defaults of where work runs (campaigns.services.controls.placement_of).
SPEC_OPTIONS = ("partition", "account", "qos", "requirements")

_built: dict[tuple[str, str], BatchBackend] = {}


def _options(name: str) -> dict[str, Any]:
    found = endpoints.endpoints().get(name)
    return dict(found.options) if found else {}


def backend(name: str) -> BatchBackend:
    """The backend of endpoint ``name``, configured from settings (cached per options).

    An endpoint not configured raises ``BackendError`` (a configuration problem: its jobs
    keep their state and the other endpoints go on)."""
    found = endpoints.endpoints().get(name)
    if found is None:
        raise BackendError(endpoints.endpoint_problem(name) or name)
    options = {k: v for k, v in found.options.items() if k not in SPEC_OPTIONS and v is not None}
    records = REGISTRY[found.kind].records_option
    if records and records not in options:
        # Each endpoint keeps its records apart: by default a folder named after it (for a
        # kind's own endpoint the same folder as before endpoints existed).
        options[records] = str(default_state_dir(name))
    key = (found.kind, json.dumps(options, sort_keys=True, default=str))
    if key not in _built:
        _built[key] = get_backend(found.kind, **options)
    return _built[key]


def spec_options(name: str) -> dict[str, str]:
    """Per-submission options of backend ``name`` (the site's partition, account, ...)."""
    options = _options(name)
    return {k: str(options[k]) for k in SPEC_OPTIONS if options.get(k)}


def work_root() -> Path:
    return Path(settings.OPOS_WORK_DIR)


def array_dir(campaign_id: int, stage_id: int, token: str) -> Path:
    """The folder of one submission; its elements are ``0`` .. ``size - 1``."""
    return work_root() / f"c{campaign_id}" / f"s{stage_id}" / token


def job_argv() -> list[str]:
    """What every job runs: the wrapper, as an argument list."""
    python = getattr(settings, "OPOS_JOB_PYTHON", "") or sys.executable
    return [python, "-m", "campaigns.execution.wrapper"]


def job_environment() -> dict[str, str]:
    """Environment every job gets: the wrapper's folder on the path, so ``-m`` finds it
    (the project folder, or where ``publish_job_wrapper`` put it for the batch nodes)."""
    code = getattr(settings, "OPOS_JOB_CODE_DIR", "") or settings.BASE_DIR
    return {"PYTHONPATH": str(Path(code))}

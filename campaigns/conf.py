"""Settings of the execution side, with their defaults.

Read through these functions (not at import time) so tests can override
them with pytest-django's ``settings`` fixture. The project settings module
may define any of them; the defaults suit the embedded development setup.

``OPOS_BACKEND_CAPACITY``
    Maximum jobs in flight per batch endpoint, e.g. ``{"local": 4, "slurm": 1000,
    "slurm-b": 300}``; an endpoint not given takes its kind's registered default.
``OPOS_MAX_JOBS_PER_SAMPLE``
    Refuse to plan a sample whose stages together make more jobs than this.
``OPOS_EXPANSION_BATCH``
    Rows per ``bulk_create`` statement when planning jobs.
``OPOS_PRIORITY_MARGIN_S``
    Slack (seconds, default an hour) a campaign must keep when one of higher priority
    is served before it: priority moves work forward only where it costs no deadline.
``OPOS_BATCH_JOB_URL``
    The batch system's view of one job, per endpoint (or one address for all), with
    ``{batch_id}`` and ``{array_id}`` in it, e.g. ``{"slurm":
    "https://ondemand.example.org/pun/sys/activejobs?jobid={batch_id}"}``.
"""

import re
from urllib.parse import quote

from django.conf import settings

from common import limits
from experiments import endpoints

from .batch import REGISTRY

SAFE_BATCH_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,120}$")

# The defaults are the backends' registrations (``campaigns/batch/__init__.py``).
DEFAULT_BACKEND_CAPACITY = {name: entry.capacity for name, entry in REGISTRY.items()}


def backend_capacity() -> dict[str, int]:
    """Jobs in flight each endpoint takes at most: ``OPOS_BACKEND_CAPACITY`` by endpoint
    name, else the default of the endpoint's kind (its registration). The kinds' own names
    are always there, as before endpoints existed."""
    configured = getattr(settings, "OPOS_BACKEND_CAPACITY", None) or {}
    defaults = {
        e.name: REGISTRY[e.kind].capacity
        for e in endpoints.endpoints().values()
        if e.kind in REGISTRY
    }
    return {
        **DEFAULT_BACKEND_CAPACITY,
        **defaults,
        **{k: int(v) for k, v in configured.items()},
    }


def max_jobs_per_sample() -> int:
    # Intake refuses the same sample lines at filing (common.limits holds the bounds).
    return limits.max_jobs_per_sample()


def expansion_batch() -> int:
    return int(getattr(settings, "OPOS_EXPANSION_BATCH", 2000))


def priority_margin_s() -> float:
    # An hour in reserve: the estimates of remaining work are estimates.
    return float(getattr(settings, "OPOS_PRIORITY_MARGIN_S", 3600))


def batch_job_url(backend: str, batch_id: str) -> str:
    """The batch system's view of a job, when a link is configured for its backend ('')."""
    configured = getattr(settings, "OPOS_BATCH_JOB_URL", None) or {}
    template = configured if isinstance(configured, str) else configured.get(backend, "")
    if not template or not batch_id or not SAFE_BATCH_ID.match(batch_id):
        return ""
    if not template.startswith(("https://", "http://")):
        return ""  # never a javascript: or relative link
    array_id = re.split(r"[_.]", batch_id, maxsplit=1)[0]
    try:
        return template.format(batch_id=quote(batch_id), array_id=quote(array_id))
    except (KeyError, IndexError, ValueError):
        return ""  # a template with other fields: no link rather than a broken page

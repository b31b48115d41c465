"""Settings of the execution side, with their defaults.

Read through these functions (not at import time) so tests can override
them with pytest-django's ``settings`` fixture. The project settings module
may define any of them; the defaults suit the embedded development setup.

``OPOS_BACKEND_CAPACITY``
    Maximum jobs in flight per batch backend, e.g. ``{"local": 4,
    "slurm": 1000, "htcondor": 5000}``.
``OPOS_MAX_JOBS_PER_SAMPLE``
    Refuse to plan a sample whose stages together make more jobs than this.
``OPOS_EXPANSION_BATCH``
    Rows per ``bulk_create`` statement when planning jobs.
``OPOS_PRIORITY_BOOST_S``
    Seconds of slack one priority level is worth to the scheduler.
"""

from django.conf import settings

from opos import limits

DEFAULT_BACKEND_CAPACITY = {"local": 4, "slurm": 1000, "htcondor": 5000}


def backend_capacity() -> dict[str, int]:
    """Jobs in flight each backend takes at most."""
    configured = getattr(settings, "OPOS_BACKEND_CAPACITY", None) or {}
    return {**DEFAULT_BACKEND_CAPACITY, **{k: int(v) for k, v in configured.items()}}


def max_jobs_per_sample() -> int:
    # Intake refuses the same sample lines at filing (opos.limits holds the bounds).
    return limits.max_jobs_per_sample()


def expansion_batch() -> int:
    return int(getattr(settings, "OPOS_EXPANSION_BATCH", 2000))


def priority_boost_s() -> float:
    # Half a day of slack per priority level: a "critical" campaign overtakes a
    # "normal" one whose slack is less than a day shorter, not one that is
    # about to miss its deadline.
    return float(getattr(settings, "OPOS_PRIORITY_BOOST_S", 12 * 3600))

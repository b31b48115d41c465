"""What keeps one pytest-xdist worker (``pytest -n N``) out of another's way.

Each worker already has a PostgreSQL test database of its own (pytest-django suffixes it:
``test_<name>_gw0``, ...), temporary folders of its own, live servers and fake services on
ports the kernel hands out (port 0), Celery queues and Slurm job names with a random part.
What remains shared is settled here:

* Redis databases: a worker uses the configured database number plus its index (modulo
  Redis's 16), so a ``flushdb`` (Django's ``cache.clear()`` on a Redis cache) or a stray
  message never reaches another worker.
* The machine's Slurm controller: the fault trial that stops it must not do so while
  another worker's test talks to Slurm. Tests that use Slurm hold a shared lock for their
  duration, the trial that stops the controller an exclusive one (``fcntl.flock`` on a file
  in the temporary folder, so separate runs on one machine respect it as well).

Without xdist the worker index is 0 and everything is as configured.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse, urlunparse

REDIS_DATABASES = 16
SLURM_LOCK = Path(tempfile.gettempdir()) / "opos-tests-slurm-controller.lock"


def worker_id() -> str:
    """``gw0``, ``gw1``, ... under pytest-xdist; ``main`` in a run without it."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def worker_index() -> int:
    name = worker_id()
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0


def redis_url_for_worker(url: str) -> str:
    """``redis://host:port/<db>`` with this worker's database: ``db + index`` (mod 16)."""
    parts = urlparse(url)
    if parts.scheme not in ("redis", "rediss"):
        return url
    path = parts.path.strip("/")
    base = int(path) if path.isdigit() else 0
    db = (base + worker_index()) % REDIS_DATABASES
    return urlunparse(parts._replace(path=f"/{db}"))


# Environment variables naming a Redis that tests and the processes they start use. Celery
# lets CELERY_BROKER_URL/CELERY_RESULT_BACKEND in the environment override a client's own
# arguments, so the environment itself is what has to change.
REDIS_VARIABLES = ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "OPOS_TEST_REDIS_URL", "CACHE_URL")


def give_worker_its_redis() -> dict[str, str]:
    """Point this worker's Redis variables at its own database; the settings to override."""
    changed = {}
    for variable in REDIS_VARIABLES:
        value = os.environ.get(variable, "")
        own = redis_url_for_worker(value)
        if own != value:
            os.environ[variable] = changed[variable] = own
    return changed


@contextlib.contextmanager
def _slurm_lock(mode: int) -> Iterator[None]:
    with SLURM_LOCK.open("a") as handle:
        # Readable and writable by every user: runs as root and as others share it.
        with contextlib.suppress(OSError):
            SLURM_LOCK.chmod(0o666)
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def slurm_in_use() -> contextlib.AbstractContextManager[None]:
    """Held while a test talks to Slurm: the controller stays up meanwhile."""
    return _slurm_lock(fcntl.LOCK_SH)


def slurm_controller_to_stop() -> contextlib.AbstractContextManager[None]:
    """Held while a test stops and restarts the controller: no other Slurm test runs."""
    return _slurm_lock(fcntl.LOCK_EX)

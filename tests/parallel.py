"""What keeps one pytest-xdist worker (``pytest -n N``) out of another's way.

Each worker already has a PostgreSQL test database of its own (pytest-django suffixes it:
``test_<name>_gw0``, ...), temporary folders of its own, live servers and fake services on
ports the kernel hands out (port 0), Celery queues and Slurm job names with a random part.
What remains shared is settled here:

* Redis databases: a worker uses the configured database number plus its index (modulo
  Redis's 16), so a ``flushdb`` (Django's ``cache.clear()`` on a Redis cache) or a stray
  message never reaches another worker.
* Migrations: on PostgreSQL the first worker to start builds a template database
  (``test_<name>_template``, migrated once per run) and every worker's test database is
  copied from it (``CREATE DATABASE ... TEMPLATE``), instead of each worker running every
  migration at the same time on the same cores (``fcntl.flock`` serialises the build).
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


def _template_lock(name: str) -> Path:
    return Path(tempfile.gettempdir()) / f"opos-tests-{name}.template"


def use_template_database(run_id: str) -> None:
    """Make this worker's PostgreSQL test database a copy of a template migrated once per
    run (``run_id``, the same in every worker of a run): the first worker builds it, the
    others wait on the lock and copy it; Django's own migrate then finds nothing to do.

    Nothing changes on other databases or without xdist (``run_id`` empty)."""
    from django.db import connections

    connection = connections["default"]
    if not run_id or connection.vendor != "postgresql":
        return
    settings_dict = connection.settings_dict
    test = settings_dict.setdefault("TEST", {})
    base = settings_dict["NAME"]
    template = f"test_{base}_template"
    lock = _template_lock(template)
    with lock.open("a+") as handle:
        with contextlib.suppress(OSError):
            lock.chmod(0o666)
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            if handle.read().strip() != run_id:
                _build_template(connection, template)
                handle.seek(0)
                handle.truncate()
                handle.write(run_id)
                handle.flush()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    test["TEMPLATE"] = template


def _build_template(connection, template: str) -> None:
    """Create and migrate ``template`` (dropped first when an earlier run left one)."""
    from django.core.management import call_command

    settings_dict = connection.settings_dict
    quoted = connection.ops.quote_name(template)
    with connection._nodb_cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {quoted}")
        cursor.execute(f"CREATE DATABASE {quoted}")
    name = settings_dict["NAME"]
    connection.close()
    settings_dict["NAME"] = template
    try:
        call_command("migrate", verbosity=0, interactive=False, run_syncdb=True)
    finally:
        # Copies need a template nobody is connected to.
        connection.close()
        settings_dict["NAME"] = name


def drop_template_database() -> None:
    """At the end of a run (in the controller): drop the template the workers copied."""
    from django.db import connections

    connection = connections["default"]
    if connection.vendor != "postgresql":
        return
    template = f"test_{connection.settings_dict['NAME']}_template"
    with contextlib.suppress(Exception), connection._nodb_cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {connection.ops.quote_name(template)}")
    _template_lock(template).unlink(missing_ok=True)


def slurm_in_use() -> contextlib.AbstractContextManager[None]:
    """Held while a test talks to Slurm: the controller stays up meanwhile."""
    return _slurm_lock(fcntl.LOCK_SH)


def slurm_controller_to_stop() -> contextlib.AbstractContextManager[None]:
    """Held while a test stops and restarts the controller: no other Slurm test runs."""
    return _slurm_lock(fcntl.LOCK_EX)

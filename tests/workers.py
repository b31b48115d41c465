"""Real Celery worker processes for end-to-end tests.

Each worker listens on a queue of its own (``CELERY_TASK_DEFAULT_QUEUE``), so
tests never take each other's messages, nor those of another test run
sharing the same Redis; under pytest-xdist each xdist worker also uses a Redis
database of its own (tests/parallel.py).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
from celery import Celery

from tests.parallel import redis_url_for_worker

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 180.0
# Celery lets CELERY_BROKER_URL in the environment override a client's own
# broker argument, so when it names a Redis (as in CI), workers and clients
# both use it; each worker's queue of its own keeps test runs apart.
_env_broker = os.environ.get("CELERY_BROKER_URL", "")
# Under pytest-xdist the variables already name this worker's database (tests/conftest.py).
REDIS_URL = os.environ.get("OPOS_TEST_REDIS_URL") or (
    _env_broker
    if _env_broker.startswith("redis://")
    else redis_url_for_worker("redis://127.0.0.1:6379/15")
)


def redis_reachable(url: str = REDIS_URL) -> bool:
    parts = urlparse(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def require_redis(url: str = REDIS_URL) -> str:
    """The Redis URL; skip without one, or fail when OPOS_REQUIRE_REDIS=1 (CI)."""
    if not redis_reachable(url):
        message = f"no Redis reachable at {url}"
        if os.environ.get("OPOS_REQUIRE_REDIS") == "1":
            pytest.fail(message + " (OPOS_REQUIRE_REDIS=1)")
        pytest.skip(message)
    return url


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path
    queue: str
    client: Celery

    def send(self, name: str, *args, **options):
        """Send task ``name`` to this worker's queue (as beat would)."""
        return self.client.send_task(name, args=args, queue=self.queue, **options)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text()[-chars:]


@contextlib.contextmanager
def celery_worker(
    broker: str,
    log: Path,
    env: dict[str, str] | None = None,
    client: Celery | None = None,
    queue: str | None = None,
) -> Iterator[Worker]:
    """Start ``celery -A opos worker`` on a queue of its own; stop it afterwards.

    ``client`` sends the tasks (default: a plain client of ``broker``); ``queue`` names the
    worker's queue (default: a new one).
    """
    queue = queue or f"opos-test-{uuid.uuid4().hex[:12]}"
    full_env = {
        **os.environ,
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": broker,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        **(env or {}),
    }
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "opos",
        "worker",
        "--loglevel",
        "INFO",
        "--pool",
        "solo",
        "--without-mingle",
        "--without-gossip",
        "--hostname",
        f"{queue}@%h",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    if client is None:
        # Not the process's current app: tasks called later in this process (by other
        # tests) must still resolve in the project's app.
        client = Celery("opos-test-client", broker=broker, backend=broker, set_as_current=False)
        client.conf.task_serializer = "json"
    worker = Worker(proc, log, queue, client)
    try:
        # A bound, not a wait: the loop ends when the worker says it is ready. On a machine
        # busy with a parallel run, importing Django and Celery alone can take a minute.
        deadline = time.monotonic() + START_TIMEOUT_S
        while "ready." not in log.read_text():
            if not worker.alive() or time.monotonic() > deadline:
                pytest.fail("worker did not start:\n" + worker.log_tail())
            time.sleep(0.2)
        yield worker
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def filesystem_client(data_dir: Path) -> Celery:
    """A client of the embedded default's broker and result store under ``data_dir``
    (as settings lay them out for ``OPOS_DATA_DIR``)."""
    broker = data_dir / "broker"
    for sub in ("queue", "processed", "broken", "control"):
        (broker / sub).mkdir(parents=True, exist_ok=True)
    (data_dir / "results").mkdir(parents=True, exist_ok=True)
    client = Celery(
        "opos-test-client",
        broker="filesystem://",
        backend=f"file://{data_dir}/results",
        set_as_current=False,  # as celery_worker's client: the project's app stays current
    )
    client.conf.broker_transport = "opos.broker:FilesystemTransport"
    client.conf.broker_transport_options = {
        "data_folder_in": str(broker / "queue"),
        "data_folder_out": str(broker / "queue"),
        "processed_folder": str(broker / "processed"),
        "broken_folder": str(broker / "broken"),
        "control_folder": str(broker / "control"),
        "store_processed": False,
    }
    client.conf.task_serializer = "json"
    return client


def filesystem_env(data_dir: Path) -> dict[str, str]:
    """Environment of a worker on the embedded default under ``data_dir``."""
    return {
        "OPOS_DATA_DIR": str(data_dir),
        "CELERY_RESULT_BACKEND": f"file://{data_dir}/results",
    }

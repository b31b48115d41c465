"""A task round trip through a real Celery worker process on Redis.

Skipped, with the reason, only when no Redis is reachable; CI sets
OPOS_REQUIRE_REDIS=1, which turns that skip into a failure.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from celery import Celery

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("OPOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_reachable(url: str) -> bool:
    parts = urlparse(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def redis_url():
    if not redis_reachable(REDIS_URL):
        message = f"no Redis reachable at {REDIS_URL}"
        if os.environ.get("OPOS_REQUIRE_REDIS") == "1":
            pytest.fail(message + " (OPOS_REQUIRE_REDIS=1)")
        pytest.skip(message)
    return REDIS_URL


@pytest.fixture
def worker(redis_url, tmp_path):
    env = {
        **os.environ,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "OPOS_DATA_DIR": str(tmp_path),
    }
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "opos",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "1",
                "--pool",
                "solo",
                "--without-mingle",
                "--without-gossip",
                "--hostname",
                f"test-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while "ready." not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("worker did not start:\n" + log.read_text()[-3000:])
        time.sleep(0.2)
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.redis
def test_task_round_trip_through_real_worker(worker, redis_url):
    # A client app of its own, so this process's configured app is left alone.
    client = Celery("opos-test-client", broker=redis_url, backend=redis_url)
    client.conf.task_serializer = "json"
    try:
        result = client.send_task("opos.ping", args=["mcc5"])
        assert result.get(timeout=30) == "pong:mcc5"
    finally:
        client.close()
    assert worker.poll() is None

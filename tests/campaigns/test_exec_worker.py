"""End to end through a real Celery worker process on Redis, sharing the PostgreSQL test
database: the tasks (as beat would send them) take a demo campaign to completed.

Skipped with the reason when Redis is not reachable (OPOS_REQUIRE_REDIS=1 fails instead)
or when the tests run on SQLite (a worker process cannot share pytest's in-memory test DB).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection

from campaigns.choices import CampaignState, JobState
from campaigns.models import Job, OutputFile
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest
from tests.campaigns.exec_support import launch
from tests.opos.test_celery_worker import REDIS_URL, redis_reachable

ROOT = Path(__file__).resolve().parents[2]
TASKS = ("campaigns.submit_ready", "campaigns.poll", "campaigns.finalize")

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shared_db():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: the worker process must share the test database")
    s = connection.settings_dict
    return (
        f"postgres://{s['USER']}:{s['PASSWORD'] or ''}@{s['HOST'] or '127.0.0.1'}:"
        f"{s['PORT'] or 5432}/{s['NAME']}"
    )


@pytest.fixture
def broker():
    if not redis_reachable(REDIS_URL):
        message = f"no Redis reachable at {REDIS_URL}"
        if os.environ.get("OPOS_REQUIRE_REDIS") == "1":
            pytest.fail(message + " (OPOS_REQUIRE_REDIS=1)")
        pytest.skip(message)
    return REDIS_URL


@pytest.fixture
def worker(shared_db, broker, exec_env):
    env = {
        **os.environ,
        "DATABASE_URL": shared_db,
        "DATABASE_CONN_MAX_AGE": "0",
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": broker,
        "OPOS_DATA_DIR": str(exec_env / "data"),
        "OPOS_WORK_DIR": str(exec_env / "work"),
        "OPOS_LOCAL_SPOOL_DIR": str(exec_env / "spool"),
        "OPOS_RETRY_BACKOFF_S": "0",
    }
    log = exec_env / "worker.log"
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
                "--pool",
                "solo",
                "--without-mingle",
                "--without-gossip",
                "--hostname",
                f"exec-{os.getpid()}@%h",
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
    yield proc, log
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_demo_campaign_completes_through_a_real_worker(worker, broker, experiment, operator):
    proc, log = worker
    campaign, request = launch(experiment, operator, events=600, per_job=200)
    client = Celery("opos-exec-test", broker=broker, backend=broker)
    client.conf.task_serializer = "json"
    try:
        client.control.purge()  # stale messages of earlier runs
        deadline = time.monotonic() + 180
        while ProductionRequest.objects.get(pk=request.pk).state != RequestState.COMPLETED:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            for name in TASKS:  # what beat sends, with its expiry
                client.send_task(name, expires=5)
            time.sleep(1.0)
    finally:
        client.close()

    assert set(Job.objects.filter(stage__campaign=campaign).values_list("state", flat=True)) == {
        JobState.SUCCEEDED
    }
    assert OutputFile.objects.filter(dataset__campaign=campaign).count() == 9
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.COMPLETED
    assert "campaigns.finalize" in log.read_text()

"""End to end through a real Celery worker process on Redis, sharing the PostgreSQL test
database: the tasks (as beat would send them) take a demo campaign to completed.

Skipped with the reason when Redis is not reachable (OPOS_REQUIRE_REDIS=1 fails instead)
or when the tests run on SQLite (a worker process cannot share pytest's in-memory test DB).
"""

import time
from pathlib import Path

import pytest
from django.db import connection

from campaigns.choices import CampaignState, JobState
from campaigns.models import Campaign, Job, OutputFile
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest
from tests.campaigns.exec_support import launch
from tests.workers import celery_worker, require_redis

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
def worker(shared_db, exec_env):
    env = {
        "DATABASE_URL": shared_db,
        "DATABASE_CONN_MAX_AGE": "0",
        "OPOS_DATA_DIR": str(exec_env / "data"),
        "OPOS_WORK_DIR": str(exec_env / "work"),
        "OPOS_LOCAL_SPOOL_DIR": str(exec_env / "spool"),
        "OPOS_RETRY_BACKOFF_S": "0",
    }
    with celery_worker(require_redis(), exec_env / "worker.log", env) as w:
        yield w


def test_demo_campaign_completes_through_a_real_worker(worker, experiment, operator):
    campaign, request = launch(experiment, operator, events=600, per_job=200)
    deadline = time.monotonic() + 180

    def done() -> bool:
        # The request completes, then its campaign: two commits, read both.
        return (
            ProductionRequest.objects.get(pk=request.pk).state == RequestState.COMPLETED
            and Campaign.objects.get(pk=campaign.pk).state == CampaignState.COMPLETED
        )

    while not done():
        assert worker.alive(), worker.log_tail()
        assert time.monotonic() < deadline, worker.log_tail()
        for name in TASKS:  # what beat sends, with its expiry
            worker.send(name, expires=5)
        time.sleep(1.0)

    assert set(Job.objects.filter(stage__campaign=campaign).values_list("state", flat=True)) == {
        JobState.SUCCEEDED
    }
    assert OutputFile.objects.filter(dataset__campaign=campaign).count() == 9
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.COMPLETED
    assert "campaigns.finalize" in worker.log.read_text()

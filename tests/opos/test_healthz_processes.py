"""``/healthz`` with a real Celery worker and beat sharing the PostgreSQL test database, on
the embedded default's broker: 200 while both beat (and beat's heartbeat task reaches the
worker), 503 with the reason once the worker is stopped.

Skipped on SQLite: the worker and beat processes cannot share pytest's in-memory test DB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
from django.db import connection

from campaigns.models import ProcessRole, WorkerHeartbeat
from tests.workers import ROOT, celery_worker, filesystem_client, filesystem_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shared_db():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: worker and beat must share the test database")
    s = connection.settings_dict
    return (
        f"postgres://{s['USER']}:{s['PASSWORD'] or ''}@{s['HOST'] or '127.0.0.1'}:"
        f"{s['PORT'] or 5432}/{s['NAME']}"
    )


def wait_for(predicate, what: str, logs, seconds: float = 90):
    deadline = time.monotonic() + seconds
    while not (value := predicate()):
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in logs)
            pytest.fail(f"{what} did not happen\n{tails}")
        time.sleep(0.3)
    return value


def test_healthz_follows_a_real_worker_and_beat(client, shared_db, tmp_path, settings, monkeypatch):
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    client_app = filesystem_client(tmp_path)
    # The monitoring system's token: /healthz then lists the processes.
    settings.OPOS_METRICS_TOKEN = "healthz-test-token"
    client.defaults["HTTP_AUTHORIZATION"] = "Bearer healthz-test-token"
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = client_app.conf.broker_transport_options
    env = {
        **filesystem_env(tmp_path),
        "DATABASE_URL": shared_db,
        "DATABASE_CONN_MAX_AGE": "0",
        "OPOS_HEARTBEAT_INTERVAL_S": "1",
    }
    queue = f"opos-test-{uuid.uuid4().hex[:12]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    worker_log, beat_log = tmp_path / "worker.log", tmp_path / "beat.log"
    with beat_log.open("w") as out:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "opos", "beat", "--loglevel", "INFO"],
            cwd=ROOT,
            env={
                **os.environ,
                **env,
                "CELERY_BROKER_URL": "filesystem://",
                "CELERY_TASK_DEFAULT_QUEUE": queue,
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        with celery_worker(
            "filesystem://", worker_log, env, client=client_app, queue=queue
        ) as worker:
            row = wait_for(
                lambda: WorkerHeartbeat.objects.filter(
                    name__startswith=f"{queue}@",
                    task_ran_at__isnull=False,
                    task_sent_at__isnull=False,
                ).first(),
                "beat's heartbeat task run by the worker",
                [worker_log, beat_log],
            )
            assert row.task_sent_at <= row.task_ran_at
            assert WorkerHeartbeat.objects.filter(role=ProcessRole.BEAT, pid=beat.pid).exists()
            response = client.get("/healthz")
            assert response.status_code == 200, response.json()
            body = response.json()
            assert isinstance(body["broker"]["queue_depth"], int)
            (mine,) = [p for p in body["workers"]["processes"] if p["name"] == row.name]
            assert mine["state"] == "alive"
            assert mine["pid"] == worker.process.pid
        # Leaving the block stopped the worker (SIGTERM: a warm shutdown).
        assert WorkerHeartbeat.objects.get(name=row.name).stopped_at is not None
        response = client.get("/healthz")
        assert response.status_code == 503
        body = response.json()
        assert "workers: no worker alive: the last one stopped" in body["reasons"][0], body
        states = {p["name"]: p["state"] for p in body["workers"]["processes"]}
        assert states[row.name] == "stopped"
        assert body["beat"]["ok"] is True
    finally:
        beat.terminate()
        beat.wait(timeout=30)

"""A worker keeps its PostgreSQL connection across tasks.

Celery's Django fixup closes the database connection around every task unless told
otherwise, which made ``CONN_MAX_AGE`` meaningless in a worker: every poll and heartbeat
opened a new PostgreSQL session. Measured here with a real worker on the test database
through PostgreSQL's own count of sessions opened on it.
"""

import time

import pytest
from django.db import connection

from tests.workers import celery_worker, require_redis

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

TASKS = 20


def _sessions_opened() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def _wait_for_successes(worker, count: int) -> None:
    # The heartbeat keeps no result: its log lines tell when the worker has run them all.
    deadline = time.monotonic() + 60
    while worker.log.read_text().count("Task campaigns.heartbeat[") < 2 * count:
        assert worker.alive() and time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.2)
    assert " raised " not in worker.log.read_text(), worker.log_tail()


def _database_url() -> str:
    s = connection.settings_dict
    return (
        f"postgres://{s['USER']}:{s['PASSWORD'] or ''}@{s['HOST'] or '127.0.0.1'}:"
        f"{s['PORT'] or 5432}/{s['NAME']}"
    )


@pytest.mark.parametrize(
    ("reuse_max", "most_sessions"),
    [
        # The default: one session for the worker's tasks (two at most, should the
        # worker's start-up have touched the database on a connection of its own).
        (None, 2),
        # The fixup's old behaviour, for contrast: a session for every task.
        ("0", TASKS + 2),
    ],
)
def test_a_worker_reuses_its_database_session_across_tasks(tmp_path, reuse_max, most_sessions):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: the worker process must share the test database")
    broker = require_redis()
    env = {"DATABASE_URL": _database_url(), "OPOS_DATA_DIR": str(tmp_path)}
    if reuse_max is not None:
        env["CELERY_DB_REUSE_MAX"] = reuse_max
    with celery_worker(broker, tmp_path / "worker.log", env) as worker:
        before = _sessions_opened()
        for _ in range(TASKS):
            worker.send("campaigns.heartbeat")
        _wait_for_successes(worker, TASKS)
        opened = _sessions_opened() - before
    assert opened <= most_sessions, worker.log_tail()
    if reuse_max == "0":
        assert opened >= TASKS

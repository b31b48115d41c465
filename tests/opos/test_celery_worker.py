"""A task round trip through a real Celery worker process on Redis.

Skipped, with the reason, only when no Redis is reachable; CI sets
OPOS_REQUIRE_REDIS=1, which turns that skip into a failure.
"""

import pytest

from tests.workers import REDIS_URL, celery_worker, redis_reachable, require_redis

__all__ = ["REDIS_URL", "redis_reachable"]  # imported by other end-to-end tests


@pytest.mark.redis
def test_task_round_trip_through_real_worker(tmp_path):
    broker = require_redis()
    with celery_worker(broker, tmp_path / "worker.log", {"OPOS_DATA_DIR": str(tmp_path)}) as w:
        assert w.send("opos.ping", "mcc5").get(timeout=30) == "pong:mcc5"
        assert w.alive()

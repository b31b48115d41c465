"""The page benchmark empties only the Redis databases it owns."""

import pytest
import redis

from bench import pages
from tests.parallel import redis_url_for_worker
from tests.workers import require_redis

# A database of this test's own (12 + the xdist worker's index): the benchmark empties the
# databases it takes, so it must not be one that the worker's other tests use.
BENCH_DB = redis_url_for_worker("redis://127.0.0.1:6379/12")


@pytest.fixture
def bench_db(monkeypatch):
    url = require_redis(BENCH_DB)
    base, _, number = url.rpartition("/")
    monkeypatch.setattr(pages, "ARGS", pages.parse_args(["--redis", base]), raising=False)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield int(number or 0), client
    client.flushdb()
    client.close()


def test_a_database_holding_someone_elses_keys_is_refused_and_kept(bench_db):
    number, client = bench_db
    client.set("celery-task-meta-1", "precious")
    with pytest.raises(SystemExit, match=rf"Redis database {number} .* 1 key\(s\)"):
        pages.redis_url(number)
    assert client.get("celery-task-meta-1") == b"precious"


def test_an_empty_database_is_taken_and_a_taken_one_emptied_again(bench_db):
    number, client = bench_db
    url = pages.redis_url(number)
    assert url.endswith(f"/{number}")
    client.set("opos:page:1", "cached by the benchmark's server")
    pages.redis_url(number)
    assert client.keys() == [pages.REDIS_OWNER_KEY.encode()]

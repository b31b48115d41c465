"""common/pagecache.py: the data version moves after commits only, fragments are keyed by
everything they depend on, and the cache being away never breaks a page."""

import socket
import uuid

import pytest
import redis as redis_client
from django.core.cache import cache, caches
from django.db import transaction
from django.test import RequestFactory, override_settings
from django.utils import timezone, translation

from common import pagecache

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _on(settings, monkeypatch):
    settings.OPOS_PAGE_CACHE_S = 30
    monkeypatch.setattr(pagecache, "_clock", lambda: 1_900_000_000.0)


def counting(value="v"):
    calls = []

    def build():
        calls.append(1)
        return value

    return build, calls


@pytest.mark.django_db(transaction=True)
def test_the_version_moves_after_the_commit_and_not_on_a_rollback():
    start = pagecache.data_version()
    with transaction.atomic():
        pagecache.bump_data_version()
        assert pagecache.data_version() == start  # not before the commit
    assert pagecache.data_version() == start + 1
    with pytest.raises(RuntimeError), transaction.atomic():
        pagecache.bump_data_version()
        raise RuntimeError
    assert pagecache.data_version() == start + 1


def test_a_lost_version_restarts_from_the_clock_not_from_one(django_capture_on_commit_callbacks):
    cache.delete(pagecache.VERSION_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        pagecache.bump_data_version()
    assert pagecache.data_version() == 1_900_000_000_000
    cache.delete(pagecache.VERSION_KEY)
    assert pagecache.data_version() == 1_900_000_000_000


def test_the_version_is_read_once_per_request(django_capture_on_commit_callbacks):
    request = RequestFactory().get("/")
    first = pagecache.data_version(request)
    with django_capture_on_commit_callbacks(execute=True):
        pagecache.bump_data_version()
    assert pagecache.data_version(request) == first
    assert pagecache.data_version() == first + 1


def test_a_fragment_is_built_once_per_key(django_capture_on_commit_callbacks):
    build, calls = counting()
    for _ in range(3):
        assert pagecache.fragment("f", [1], "all", build) == "v"
    assert len(calls) == 1
    pagecache.fragment("f", [2], "all", build)  # other ids
    pagecache.fragment("f", [1], "operator", build)  # other scope
    with translation.override("fr"):
        pagecache.fragment("f", [1], "all", build)  # other language
    with timezone.override("America/Chicago"):
        pagecache.fragment("f", [1], "all", build)  # other time zone
    with django_capture_on_commit_callbacks(execute=True):
        pagecache.bump_data_version()
    pagecache.fragment("f", [1], "all", build)  # other data version
    assert len(calls) == 6


def test_nothing_is_cached_with_no_seconds(settings):
    settings.OPOS_PAGE_CACHE_S = 0
    build, calls = counting()
    pagecache.fragment("f", [1], "all", build)
    pagecache.fragment("f", [1], "all", build)
    assert len(calls) == 2


def test_a_broken_cache_computes_the_page(monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(cache, "get", broken)
    monkeypatch.setattr(cache, "incr", broken)
    build, calls = counting()
    assert pagecache.fragment("f", [1], "all", build) == "v"
    pagecache.bump_data_version()  # logged, not raised: the write is committed
    assert len(calls) == 1


def test_the_query_string_is_normalized_by_name():
    factory = RequestFactory()
    a = pagecache.normalized_query(factory.get("/?b=2&a=1&state=x&state=y"))
    b = pagecache.normalized_query(factory.get("/?state=x&a=1&state=y&b=2"))
    assert a == b == "a=1&b=2&state=x&state=y"
    swapped = pagecache.normalized_query(factory.get("/?state=y&state=x"))
    assert swapped != "state=x&state=y"


def test_members_scope_depends_on_experiments_and_roles():
    assert pagecache.members_scope(True, {1: "liaison"}) == "operator"
    liaison = pagecache.members_scope(False, {1: "liaison", 2: "physicist"})
    assert liaison == pagecache.members_scope(False, {2: "physicist", 1: "liaison"})
    assert liaison != pagecache.members_scope(False, {1: "physicist", 2: "physicist"})
    assert liaison != pagecache.members_scope(False, {1: "liaison"})


def _redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _redis_up(), reason="needs Redis on 127.0.0.1:6379")
def test_with_redis_a_bump_reaches_every_process(django_capture_on_commit_callbacks):
    # Keys under a prefix of this test's own, removed by prefix afterwards: clear() would
    # flush the whole Redis database, which parallel test workers and runs may be using.
    url = "redis://127.0.0.1:6379/7"
    prefix = f"opos-test-{uuid.uuid4().hex[:12]}"
    redis = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": prefix,
        }
    }
    try:
        with override_settings(CACHES=redis):
            assert caches["default"].get(pagecache.VERSION_KEY) is None
            with django_capture_on_commit_callbacks(execute=True):
                pagecache.bump_data_version()
                pagecache.bump_data_version()
            assert pagecache.data_version() == 1_900_000_000_001
            build, calls = counting(b"{}")
            pagecache.fragment("f", [1], "all", build)
            pagecache.fragment("f", [1], "all", build)
            assert len(calls) == 1
    finally:
        client = redis_client.Redis.from_url(url)
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        client.close()

"""Shared fixtures: fast hashing, users with roles, an API client with a token."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from campaigns.execution.inflight import KNOWN
from requests_app.models.visibility import forget_roles
from tests.factories import ExperimentFactory, UserFactory, grant


@pytest.fixture(autouse=True)
def _fast_tests(settings, tmp_path):
    # Argon2 is deliberately slow; tests don't need it.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.OPOS_WORK_DIR = tmp_path / "work"
    # The page cache is off unless a test turns it on (tests/monitoring/test_page_cache.py):
    # a test's writes are never committed, so their "data changed" never runs, and many
    # tests write behind the services' backs; CI's CACHE_URL must not turn it on for all.
    settings.OPOS_PAGE_CACHE_S = 0
    # Each test's database is rolled back, and SQLite then hands out the same ids
    # again: a cache entry keyed by ids (snapshot histories) must not outlive its test,
    # nor the poller's view of the jobs in flight.
    cache.clear()
    KNOWN.forget()


@pytest.fixture
def experiment(db):
    return ExperimentFactory(slug="dune", name="DUNE")


@pytest.fixture
def other_experiment(db):
    return ExperimentFactory(slug="sbnd", name="SBND")


@pytest.fixture
def operator(db):
    return grant(UserFactory(username="op"), "operator")


@pytest.fixture
def admin_user(db):
    return grant(UserFactory(username="boss"), "admin")


@pytest.fixture
def liaison(experiment):
    return grant(UserFactory(username="liaison"), "liaison", experiment)


@pytest.fixture
def physicist(experiment):
    return grant(UserFactory(username="phys"), "physicist", experiment)


@pytest.fixture
def other_liaison(other_experiment):
    return grant(UserFactory(username="other"), "liaison", other_experiment)


@pytest.fixture
def api():
    """``api(user)`` -> an APIClient authenticated with a token of the user's (one per user
    and test, issued as ``opos login`` gets it: hashed in the database, expiring)."""
    from requests_app.services import tokens

    issued: dict[int, str] = {}

    def make(user=None):
        client = APIClient()
        if user is not None:
            forget_roles(user)
            if user.pk not in issued:
                issued[user.pk] = tokens.issue(user)[1]
            client.credentials(HTTP_AUTHORIZATION=f"Token {issued[user.pk]}")
        return client

    return make

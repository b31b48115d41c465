"""Shared fixtures: fast hashing, users with roles, an API client with a token; what keeps
parallel test workers (pytest -n N) apart (tests/parallel.py)."""

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import override_settings
from rest_framework.test import APIClient

from campaigns.execution.inflight import KNOWN
from experiments.models.visibility import forget_roles
from tests.factories import ExperimentFactory, UserFactory, grant
from tests.parallel import (
    drop_template_database,
    give_worker_its_redis,
    slurm_controller_to_stop,
    slurm_in_use,
    use_template_database,
)

FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def pytest_configure(config):
    # Each xdist worker uses a Redis database of its own (so does every process its tests
    # start, inheriting the environment): a Redis cache is cleared before every test, and
    # one worker's clear() must not empty another's cache, nor its broker, mid-test.
    changed = give_worker_its_redis()
    overrides: dict = {}
    if "CELERY_BROKER_URL" in changed:
        overrides["CELERY_BROKER_URL"] = changed["CELERY_BROKER_URL"]
    if "CACHE_URL" in changed:
        overrides["CACHES"] = {
            alias: {**options, "LOCATION": changed["CACHE_URL"]}
            if options.get("BACKEND", "").endswith("RedisCache")
            else options
            for alias, options in django_settings.CACHES.items()
        }
    # Argon2 is deliberately slow: tests (and what module- or session-scoped fixtures
    # build before a test's own settings apply) hash with MD5.
    overrides["PASSWORD_HASHERS"] = FAST_HASHERS
    override_settings(**overrides).enable()


def pytest_sessionfinish(session):
    # The controller of an xdist run drops the template database its workers copied.
    config = session.config
    if not hasattr(config, "workerinput") and getattr(config.option, "numprocesses", None):
        from pytest_django.plugin import blocking_manager_key

        with config.stash[blocking_manager_key].unblock():
            drop_template_database()


@pytest.fixture(scope="session")
def django_db_modify_db_settings_parallel_suffix(
    django_db_modify_db_settings_tox_suffix,
    django_db_modify_db_settings_xdist_suffix,
    django_db_blocker,
    request,
):
    """pytest-django's suffixes, and under xdist a test database copied from a template
    migrated once per run (tests/parallel.py). The browser journeys' settings build on it."""
    run_id = getattr(request.config, "workerinput", {}).get("testrunuid", "")
    with django_db_blocker.unblock():
        use_template_database(run_id)


# Long tests first, in this order. With `--dist load --maxschedchunk 2` (make test),
# pytest-xdist hands each worker its next tests as it finishes the last ones, so the long
# ones are shared out over the workers first, and the run does not end waiting on one
# worker that drew several of them. The trial that stops the Slurm controller goes first,
# while the other workers start on tests that need no Slurm (browser journeys, real
# Celery workers).
LONG_FIRST = ("stops_slurm_controller", "browser", "redis", "faults", "slurm")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        return next(
            (n for n, mark in enumerate(LONG_FIRST) if item.get_closest_marker(mark)),
            len(LONG_FIRST),
        )

    items.sort(key=rank)  # stable: the collection order within each rank


def fast_settings(folder: Path) -> dict:
    """What every test runs with; ``folder`` is the test's own (or a module's, for what a
    module-scoped fixture builds)."""
    backend_options = django_settings.OPOS_BACKEND_OPTIONS
    return {
        # Argon2 is deliberately slow; tests don't need it.
        "PASSWORD_HASHERS": FAST_HASHERS,
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "OPOS_WORK_DIR": folder / "work",
        "OPOS_STORAGE_DIR": folder / "storage",
        # Batch spools and records in the test's folder too, not in the shared data folder
        # where parallel workers (and runs) would see each other's jobs.
        "OPOS_BACKEND_OPTIONS": {
            **backend_options,
            "local": {**backend_options["local"], "spool_dir": str(folder / "spool")},
            "slurm": {**backend_options["slurm"], "state_dir": str(folder / "slurm-state")},
        },
        # The page cache is off unless a test turns it on (tests/monitoring/test_page_cache.py):
        # a test's writes are never committed, so their "data changed" never runs, and many
        # tests write behind the services' backs; CI's CACHE_URL must not turn it on for all.
        "OPOS_PAGE_CACHE_S": 0,
        # The same for the viewer cache (experiments/viewers.py): a grant a test writes is
        # never committed, so it would never drop the cached roles.
        "OPOS_VIEWER_CACHE": False,
        # And for the scheduler's projection shared by the pages (campaigns/services/
        # projection.py), keyed by the same data version.
        "OPOS_PROJECTION_S": 0,
    }


@pytest.fixture(autouse=True)
def _fast_tests(settings, tmp_path):
    for name, value in fast_settings(tmp_path).items():
        setattr(settings, name, value)
    # Each test's database is rolled back, and SQLite then hands out the same ids
    # again: a cache entry keyed by ids (snapshot histories) must not outlive its test,
    # nor the poller's view of the jobs in flight.
    cache.clear()
    KNOWN.forget()


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory):
    """The tests' settings (``fast_settings``) for what a module-scoped fixture builds,
    before any test's own settings apply."""
    with override_settings(**fast_settings(tmp_path_factory.mktemp("module"))):
        yield


@pytest.fixture(autouse=True)
def _slurm_controller(request):
    """A test that talks to Slurm keeps the controller up for its duration; the fault trial
    that stops the controller waits until no such test runs, in any worker (tests/parallel.py)."""
    node = request.node
    if node.get_closest_marker("stops_slurm_controller"):
        with slurm_controller_to_stop():
            yield
    elif node.get_closest_marker("slurm") or node.get_closest_marker("faults"):
        with slurm_in_use():
            yield
    else:
        yield


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

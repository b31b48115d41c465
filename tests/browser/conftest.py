"""Fixtures of the browser journeys: Debian's Chromium driven by Playwright against pytest-
django's live server, and a real Celery worker process sharing the test database.

* No Chromium (or no Playwright): the journeys skip, saying so; with
  ``OPOS_REQUIRE_BROWSER=1`` (CI) that is a failure instead.
* The worker needs the test database to be shared with another process: PostgreSQL, or an
  SQLite test database in a file. When only ``tests/browser`` runs on SQLite, its test
  database is put in a file (WAL, as the embedded default runs); in a larger SQLite run
  the test database stays in memory and the worker part skips with the reason.
* Broker: Redis when reachable (``OPOS_REQUIRE_REDIS=1`` makes it required), else kombu's
  filesystem transport in a temporary folder; either way on a queue of the worker's own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from celery import Celery
from django.db import connection, connections

from tests.opos.test_celery_worker import REDIS_URL, redis_reachable

from .support import ARTIFACTS, AXE_SOURCE, ROOT, Journey, Worker, wait_started

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BROWSER_ONLY = pytest.StashKey[bool]()
SCREENSHOTS = pytest.StashKey[bool]()
CLEARED = pytest.StashKey[set]()


def _required(variable: str) -> bool:
    return os.environ.get(variable) == "1"


def _skip_or_fail(message: str, variable: str) -> None:
    if _required(variable):
        pytest.fail(f"{message} ({variable}=1)")
    pytest.skip(message)


# --- the test database, shareable with the worker ----------------------------------------


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    config.stash[BROWSER_ONLY] = bool(items) and all(
        Path(str(item.path)).is_relative_to(here) for item in items
    )


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix, request, tmp_path_factory
):
    """On SQLite, when only the journeys run: the test database in a file the worker can
    open (named as the embedded default names it, so the worker's settings give it WAL
    and the busy timeout). Other SQLite runs keep pytest-django's in-memory database."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3" and request.config.stash.get(
        BROWSER_ONLY, False
    ):
        folder = tmp_path_factory.mktemp("browser-db")
        db.setdefault("TEST", {})["NAME"] = str(folder / "opos.sqlite3")


@pytest.fixture
def shared_database() -> dict[str, str]:
    """Environment that points a worker process at this test database; else skip."""
    s = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = quote(s["USER"] or "postgres") + (
            f":{quote(s['PASSWORD'])}" if s["PASSWORD"] else ""
        )
        host = s["HOST"] or "127.0.0.1"
        return {"DATABASE_URL": f"postgres://{auth}@{host}:{s['PORT'] or 5432}/{s['NAME']}"}
    if connection.vendor == "sqlite" and not connection.is_in_memory_db():
        path = Path(s["NAME"])
        assert path.name == "opos.sqlite3", path
        return {"DATABASE_URL": "", "OPOS_DATA_DIR": str(path.parent)}
    pytest.skip(
        "the worker cannot share an in-memory SQLite test database: run tests/browser on "
        "its own (it then uses a file) or on PostgreSQL"
    )


# --- the real worker ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def broker_url() -> str:
    if redis_reachable(REDIS_URL):
        return REDIS_URL
    if _required("OPOS_REQUIRE_REDIS"):
        pytest.fail(f"no Redis reachable at {REDIS_URL} (OPOS_REQUIRE_REDIS=1)")
    return "filesystem://"


def _filesystem_options(data_dir: Path) -> dict[str, object]:
    """The transport options opos.settings derives from OPOS_DATA_DIR, for the client."""
    broker = data_dir / "broker"
    for sub in ("queue", "processed", "control"):
        (broker / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(broker / "queue"),
        "data_folder_out": str(broker / "queue"),
        "processed_folder": str(broker / "processed"),
        "control_folder": str(broker / "control"),
        "store_processed": False,
    }


@pytest.fixture
def real_worker(live_server, shared_database, broker_url, tmp_path):
    """A real ``celery worker`` on the test database with the local batch backend; the
    test drives it with ``worker.tick()`` (what beat sends). Stopped before the database
    is flushed (it depends on the live server, which holds the transactional database)."""
    queue = f"browser-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "OPOS_DATA_DIR": str(tmp_path / "data"),
        **shared_database,
        "DATABASE_CONN_MAX_AGE": "0",
        "CELERY_BROKER_URL": broker_url,
        "OPOS_WORK_DIR": str(tmp_path / "work"),
        "OPOS_LOCAL_SPOOL_DIR": str(tmp_path / "spool"),
        "OPOS_LOCAL_SLOTS": "4",
        "OPOS_LOCAL_CAPACITY": "8",
        "OPOS_RETRY_BACKOFF_S": "0",
        "OPOS_SUBMIT_INTERVAL_S": "1",
        "OPOS_TEST_QUEUE": queue,
        "DJANGO_SETTINGS_MODULE": "opos.settings",
    }
    if not env["DATABASE_URL"]:
        del env["DATABASE_URL"]
    data_dir = Path(env["OPOS_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)
    # Not the process's current app: tasks called later in this process (by other tests of
    # this xdist worker) must still resolve in the project's app.
    client = Celery("browser-journeys", broker=broker_url, set_as_current=False)
    if broker_url.startswith("redis://"):
        env["CELERY_RESULT_BACKEND"] = broker_url
    else:
        env.pop("CELERY_RESULT_BACKEND", None)
        client.conf.broker_transport_options = _filesystem_options(data_dir)
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.browser.worker_app",
                "worker",
                "--loglevel",
                "INFO",
                "--pool",
                "solo",
                "--queues",
                queue,
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
                "--hostname",
                f"{queue}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_started(proc, log)
    worker = Worker(proc=proc, log=log, client=client, queue=queue, broker=broker_url)
    yield worker
    worker.stop()
    print(f"\nworker log: {log}")


# --- the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Debian's Chromium (Playwright's own download cannot work here)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _skip_or_fail("Playwright for Python is not installed", "OPOS_REQUIRE_BROWSER")
    wanted = os.environ.get("OPOS_CHROMIUM")  # another build, for trying one out
    candidates = [wanted] if wanted else ["/usr/bin/chromium", shutil.which("chromium")]
    path = next((p for p in candidates if p and os.access(p, os.X_OK)), None)
    if path is None:
        _skip_or_fail(
            f"no Chromium found at {wanted}"
            if wanted
            else "no Chromium found (apt-get install -y chromium)",
            "OPOS_REQUIRE_BROWSER",
        )
    return path


@pytest.fixture(autouse=True)
def _live_settings(settings):
    # Dashboards refresh every second: the journeys watch them change in place.
    settings.OPOS_DASHBOARD_REFRESH_S = 1


@pytest.fixture
def browser(chromium_executable, live_server, monkeypatch):
    """Chromium for one journey.

    Playwright's sync API keeps an asyncio loop in this thread while it runs, where Django
    refuses ORM calls by default; the journeys interleave set-up, checks and clicks in one
    thread, one call at a time, which is safe, so the guard is lifted for the test.
    """
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=chromium_executable, args=CHROMIUM_ARGS
        )
    except Exception:
        playwright.stop()
        raise
    yield chromium
    chromium.close()
    # The ORM calls made while Playwright ran used connections of their own (Django keeps
    # connections per context, and Playwright's loop runs in this one); close them here,
    # or the test database could not be dropped at the end.
    connections.close_all()
    playwright.stop()


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's script (``make install`` fetches it from npm into .axe/)."""
    if not AXE_SOURCE.is_file():
        _skip_or_fail(
            f"axe-core is missing at {AXE_SOURCE}: run `make axe` (npm install --prefix .axe "
            "axe-core@4)",
            "OPOS_REQUIRE_BROWSER",
        )
    return AXE_SOURCE.read_text()


@pytest.fixture
def journey(request, browser, live_server, axe_source):
    """The journey of this test module: ``journey.tab(who)`` opens a person's window;
    ``journey.finish()`` takes the screenshots and asserts the pages' checks."""
    name = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    folder = ARTIFACTS / name
    cleared = request.config.stash.setdefault(CLEARED, set())
    if name not in cleared:  # a module's later journeys keep its earlier ones' pictures
        cleared.add(name)
        if folder.exists():
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    trip = Journey(
        name=name, folder=folder, browser=browser, base_url=live_server.url, axe=axe_source
    )
    request.config.stash[SCREENSHOTS] = True
    yield trip
    trip.close()


def pytest_terminal_summary(terminalreporter, config):
    if config.stash.get(SCREENSHOTS, False):
        terminalreporter.write_line(f"browser journeys' screenshots: {ARTIFACTS}/<journey>/")

"""What the benchmark scripts share: their own databases, Django set up on one, timing.

The benchmarks never touch a database they did not create: every name they create or
drop starts with ``bench`` (``bench8``, ``bench8_small``, ...), and the server they reach
is ``OPOS_BENCH_ADMIN_URL`` (default ``postgres://postgres@127.0.0.1:5432/postgres``),
whose user must be allowed to create databases.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DB_PREFIX = "bench"


def admin_url() -> str:
    return os.environ.get("OPOS_BENCH_ADMIN_URL", DEFAULT_ADMIN_URL)


def db_url(name: str) -> str:
    """The admin URL with its database name replaced by ``name``."""
    parts = urlsplit(admin_url())
    return urlunsplit(parts._replace(path=f"/{name}"))


def check_name(name: str) -> str:
    # The one guard that keeps the benchmarks away from other people's databases.
    if not name.startswith(DB_PREFIX) or not name.replace("_", "").isalnum():
        raise SystemExit(f"benchmark databases are named {DB_PREFIX}*: refusing {name!r}")
    return name


def _admin_connection():
    import psycopg

    return psycopg.connect(admin_url(), autocommit=True)


def database_exists(name: str) -> bool:
    with _admin_connection() as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    return row is not None


def create_database(name: str, template: str | None = None) -> None:
    """Drop (if it exists) and create the benchmark database ``name``, empty or as a copy
    of benchmark database ``template``."""
    from psycopg import sql

    check_name(name)
    with _admin_connection() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        if template:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(check_name(template))
                )
            )
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(name: str) -> None:
    from psycopg import sql

    check_name(name)
    with _admin_connection() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def target_campaign(conn) -> tuple[int, str, str, int]:
    """(id, name, experiment slug, jobs) of the active campaign with the most jobs (not the
    submission benchmark's): the campaign whose pages the benchmarks load."""
    return conn.execute(
        """
        SELECT c.id, c.name, e.slug, sum(s.jobs_total) AS jobs
        FROM campaigns_campaign c
        JOIN requests_app_experiment e ON e.id = c.experiment_id
        JOIN campaigns_stage s ON s.campaign_id = c.id
        WHERE c.state = 'active' AND e.slug <> 'bench-submit'
        GROUP BY c.id, c.name, e.slug
        ORDER BY jobs DESC, c.id LIMIT 1
        """
    ).fetchone()


def data_dir() -> Path:
    """Secret key, work folders and logs of the benchmark runs (never the project's data/)."""
    path = Path(os.environ.get("OPOS_BENCH_DATA_DIR") or Path(tempfile.gettempdir()) / "opos-bench")
    path.mkdir(parents=True, exist_ok=True)
    return path


def bench_environment(db_name: str, **extra: str) -> dict[str, str]:
    """Environment variables that point the project at benchmark database ``db_name``."""
    env = {
        "DATABASE_URL": db_url(check_name(db_name)),
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "OPOS_DATA_DIR": str(data_dir()),
        "OPOS_ENV": "development",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        # One connection per process for the whole run, like a busy worker.
        "DATABASE_CONN_MAX_AGE": "600",
    }
    env.update(extra)
    return env


def setup_django(db_name: str, **extra: str) -> None:
    """Point this process at ``db_name`` and set Django up (once, before any model import)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.update(bench_environment(db_name, **extra))
    import django

    django.setup()


def timed(fn: Callable[[], Any], repeat: int, setup: Callable[[], Any] | None = None) -> dict:
    """Run ``fn`` ``repeat`` times (``setup`` before each, untimed); seconds per run.

    Returns median and best: on a shared machine the median carries the neighbours'
    load, the best is closer to the code's own cost.
    """
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "best_s": min(times), "runs": len(times)}


def emit(figures: Any, out: str | None) -> None:
    """A benchmark's figures as JSON: into the file ``out`` (``--out``) or on stdout."""
    import json

    text = json.dumps(figures, indent=1, default=str)
    if out:
        Path(out).write_text(text)
    else:
        print(text)

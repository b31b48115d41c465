"""Where a page's time goes: one request at a time, in process, SQL and the rest.

    .venv/bin/python -m bench.anatomy --db bench8 [--repeat 5] [--out r.json]
        [--profile "experiment overview"]

For the pages of the page benchmark (bench/pages.py): Django's test client, signed in
as the benchmark operator, no server and no load; the median of ``--repeat`` requests,
the number of SQL queries and the time the database took for them. What is left is
Python: the view, the template or serializer, the middleware.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import db_url, emit, setup_django, target_campaign


def run() -> dict[str, Any]:
    import psycopg
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from bench.dataset import BENCH_USER
    from bench.pages import urls_of
    from requests_app.services import tokens

    with psycopg.connect(db_url(ARGS.db)) as conn:
        campaign = target_campaign(conn)
    settings.ALLOWED_HOSTS = ["testserver"]
    user = get_user_model().objects.get(username=BENCH_USER)
    client = Client()
    client.force_login(user)
    _row, token = tokens.issue(user)
    session = client.cookies["sessionid"].value
    out: dict[str, Any] = {}
    connection.force_debug_cursor = True  # record every query with its time
    for name, (path, headers) in urls_of(campaign, session, token).items():
        extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
        extra.pop("HTTP_COOKIE", None)  # the test client sends its own session
        client.get(path, **extra)  # warm up
        times, cpu, sql, queries, size = [], [], [], 0, 0
        for _ in range(ARGS.repeat):
            connection.queries_log.clear()
            start, start_cpu = time.perf_counter(), time.process_time()
            response = client.get(path, **extra)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code}")
            queries = len(connection.queries)
            sql.append(sum(float(q["time"]) for q in connection.queries))
            size = len(response.content)
        total, db = statistics.median(times), statistics.median(sql)
        out[name] = {
            "path": path,
            "ms": round(total * 1000, 1),
            "queries": queries,
            "sql_ms": round(db * 1000, 1),
            "python_ms": round((total - db) * 1000, 1),
            # CPU time of this process: the Python part, and little affected by other
            # processes on a shared machine (the wall times are).
            "cpu_ms": round(statistics.median(cpu) * 1000, 1),
            "bytes": size,
        }
        print(
            f"  {name:20} {total * 1000:7.1f} ms  {queries:3} queries  SQL {db * 1000:6.1f} ms  "
            f"CPU {statistics.median(cpu) * 1000:6.1f} ms  {size:7,} bytes",
            file=sys.stderr,
        )
    connection.force_debug_cursor = False
    if ARGS.profile:
        profile(client, urls_of(campaign, session, token)[ARGS.profile])
    return out


def profile(client, url: tuple[str, dict]) -> None:
    """cProfile of ``--repeat`` requests of one page: the functions by cumulative time."""
    import cProfile
    import pstats

    path, headers = url
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
    extra.pop("HTTP_COOKIE", None)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(ARGS.repeat):
        client.get(path, **extra)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stderr).strip_dirs()
    stats.sort_stats("cumulative").print_stats(ARGS.profile_lines)
    stats.sort_stats("tottime").print_stats(ARGS.profile_lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="bench8")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", help="write the figures here as JSON")
    parser.add_argument("--profile", metavar="PAGE", help='also cProfile one page ("progress API")')
    parser.add_argument("--profile-lines", type=int, default=40)
    return parser.parse_args(argv)


ARGS: argparse.Namespace


def main(argv: list[str] | None = None) -> None:
    global ARGS
    ARGS = parse_args(argv)
    setup_django(ARGS.db)
    emit(run(), ARGS.out)


if __name__ == "__main__":
    main()

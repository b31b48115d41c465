"""Benchmark 3: pages and API under load, through gunicorn on loopback, with wrk.

    .venv/bin/python -m bench.pages --db bench8 --small-db bench8_small [--duration 10]

For each database (1,000,000 jobs, and its copy with 1,000 job rows left, see
bench/generate.py ``--from``): start gunicorn with ``bench.settings`` on 127.0.0.1, sign
in by a real POST to the login form (session cookie) and get an API token from
``/api/v1/auth/token/``, check every URL answers 200 once, then load each URL for
``--duration`` seconds with wrk (``--connections`` connections, one thread, after a short
warm-up), in ``--rounds`` alternations between the two servers, both up at once, so that
a neighbour's load on a shared machine falls on both alike; each figure is the median of
the rounds' percentiles. The floor is ``/bench/trivial/`` on the same server with the
same cookie: the whole stack (gunicorn, middleware, session), no work.

Pages: the campaign dashboard (monitoring) and the campaign page (campaigns) of the
active campaign with the most jobs, the experiment overview of its experiment, the
request list API, and the campaign progress API.

Two passes, each with its own servers: *cached*, as deployed (a Redis cache,
``CACHE_URL``, one database number per server, flushed at start, so the page cache of
common/pagecache.py is on: the load measures the cache-hit path of many viewers within one
data version), then *uncached* (``OPOS_PAGE_CACHE_S=0``: every request computes its page,
what a miss costs; the "1,000,000 vs 1,000 jobs" comparison must hold there too, a cache
must not hide a scan). ``--passes cached`` or ``uncached`` runs one. Beside each server,
the worker's part of the pages runs as deployed: the scheduler's projection kept for the
current data version (``bench/refresher.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, bench_environment, database_exists, db_url, emit, target_campaign
from bench.dataset import BENCH_PASSWORD, BENCH_USER

LUA = Path(__file__).with_name("wrk_report.lua")


def big_campaign(db: str) -> tuple[int, str, str, int]:
    import psycopg

    with psycopg.connect(db_url(db)) as conn:
        return target_campaign(conn)


def same_campaign(db: str, campaign_id: int) -> tuple[int, str, str, int]:
    import psycopg

    with psycopg.connect(db_url(db)) as conn:
        return conn.execute(
            """
            SELECT c.id, c.name, e.slug, coalesce(sum(s.jobs_total), 0)
            FROM campaigns_campaign c
            JOIN requests_app_experiment e ON e.id = c.experiment_id
            LEFT JOIN campaigns_stage s ON s.campaign_id = c.id
            WHERE c.id = %s GROUP BY c.id, c.name, e.slug
            """,
            [campaign_id],
        ).fetchone()


def count_jobs(db: str) -> int:
    import psycopg

    with psycopg.connect(db_url(db)) as conn:
        return conn.execute("SELECT count(*) FROM campaigns_job").fetchone()[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """gunicorn serving the project with bench.settings on one benchmark database."""

    def __init__(self, db: str, workers: int, extra: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **bench_environment(db, **extra)}
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.log = open(Path(env["OPOS_DATA_DIR"]) / f"gunicorn-{db}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                str(gunicorn),
                "opos.wsgi:application",
                f"--bind=127.0.0.1:{self.port}",
                f"--workers={workers}",
                "--worker-class=sync",
                "--timeout=120",
                "--log-level=warning",
                f"--chdir={ROOT}",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        # As deployed, the worker keeps the scheduler's projection of the current data
        # version in the cache for the pages (campaigns/services/projection.py): its beat
        # task, every half OPOS_PROJECTION_S, in a process of its own.
        self.writer = subprocess.Popen(
            [sys.executable, "-m", "bench.refresher"],
            env=env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(
                    f"gunicorn exited ({self.process.returncode}): see {self.log.name}"
                )
            try:
                if httpx.get(f"{self.base}/bench/trivial/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"gunicorn did not answer within {timeout} s")

    def stop(self) -> None:
        self.writer.terminate()
        self.writer.wait(timeout=20)
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def sign_in(base: str) -> tuple[str, str]:
    """A session cookie from a real POST to the login form, and an API token."""
    import httpx

    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as client:
        form = client.get("/accounts/login/")
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        if form.status_code != 200 or not match:
            raise SystemExit(f"login form: {form.status_code}")
        done = client.post(
            "/accounts/login/",
            data={
                "csrfmiddlewaretoken": match.group(1),
                "username": BENCH_USER,
                "password": BENCH_PASSWORD,
                "next": "/",
            },
        )
        session = client.cookies.get("sessionid")
        if done.status_code != 302 or not session:
            raise SystemExit(f"login failed: {done.status_code}")
        answer = client.post(
            "/api/v1/auth/token/", json={"username": BENCH_USER, "password": BENCH_PASSWORD}
        )
        if answer.status_code != 200:
            raise SystemExit(f"token: {answer.status_code} {answer.text[:200]}")
    return session, answer.json()["token"]


def check(base: str, path: str, headers: dict[str, str]) -> int:
    """One request: it must be a 200 with a body (never a redirect to the login page)."""
    import httpx

    response = httpx.get(base + path, headers=headers, timeout=120, follow_redirects=False)
    if response.status_code != 200 or not response.content:
        raise SystemExit(f"{path}: {response.status_code} {response.text[:200]}")
    return len(response.content)


def wrk(url: str, headers: dict[str, str], seconds: float) -> dict[str, Any]:
    argv = [
        "wrk",
        f"--threads={ARGS.threads}",
        f"--connections={ARGS.connections}",
        f"--duration={max(int(seconds), 1)}s",
        "--timeout=30s",
        f"--script={LUA}",
    ]
    for name, value in headers.items():
        argv += ["--header", f"{name}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("WRK_JSON "))
    data = json.loads(line.removeprefix("WRK_JSON "))
    errors = sum(data[k] for k in data if k.endswith("_errors")) + data["timeouts"]
    if errors:
        raise SystemExit(f"{url}: {errors} errors under load: {data}")
    data["requests_per_s"] = data["requests"] / (data["duration_us"] / 1e6)
    return data


def urls_of(campaign: tuple, session: str, token: str) -> dict[str, tuple[str, dict]]:
    campaign_id, _name, slug, _jobs = campaign
    browser = {"Cookie": f"sessionid={session}"}
    api = {"Authorization": f"Token {token}"}
    return {
        "trivial view": ("/bench/trivial/", browser),
        "campaign dashboard": (f"/monitoring/campaigns/{campaign_id}/", browser),
        "campaign page": (f"/campaigns/{campaign_id}/", browser),
        "experiment overview": (f"/monitoring/experiments/{slug}/", browser),
        "request list API": ("/api/v1/requests/", api),
        "progress API": (f"/api/v1/campaigns/{campaign_id}/progress/", api),
    }


def combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure from several wrk rounds: the median of each percentile, totals summed."""
    out: dict[str, Any] = {
        key: statistics.median(r[key] for r in rounds)
        for key in ("p50_us", "p90_us", "p95_us", "p99_us", "mean_us")
    }
    out["max_us"] = max(r["max_us"] for r in rounds)
    out["requests"] = sum(r["requests"] for r in rounds)
    out["requests_per_s"] = out["requests"] / sum(r["duration_us"] / 1e6 for r in rounds)
    out["rounds_p95_us"] = [r["p95_us"] for r in rounds]
    return out


# Written into each Redis database the benchmark takes, so that a later run knows the
# database is its own to empty: one holding anything else is refused, never flushed.
REDIS_OWNER_KEY = "opos-bench:owner"


def redis_url(number: int) -> str:
    """A Redis database of the benchmark, emptied (the page cache, sessions, the version).

    Only a database that is empty or that an earlier run of this benchmark took is used."""
    import redis

    url = f"{ARGS.redis.rstrip('/')}/{number}"
    client = redis.Redis.from_url(url)
    try:
        keys = client.dbsize()
        if keys and not client.exists(REDIS_OWNER_KEY):
            raise SystemExit(
                f"Redis database {number} at {ARGS.redis} holds {keys} key(s) this benchmark "
                "did not write: choose free databases with --redis-db N (it uses N and N+1)"
            )
        client.flushdb()
        client.set(REDIS_OWNER_KEY, "bench/pages.py")
    finally:
        client.close()
    return url


def run() -> dict[str, Any]:
    """Both servers up at once; every URL loaded on one, then the other, ``--rounds``
    times, so that a neighbour's load on this shared machine falls on both alike. Once
    with the page cache (Redis), once without (``OPOS_PAGE_CACHE_S=0``)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    big = big_campaign(ARGS.db)
    databases = {"big": (ARGS.db, big)}
    if database_exists(ARGS.small_db):
        small = same_campaign(ARGS.small_db, big[0])
        if small is None or small[1] != big[1]:
            raise SystemExit(f"{ARGS.small_db} does not have campaign {big[:2]}: generate both")
        databases["small"] = (ARGS.small_db, small)
    else:  # the pages are still measured; "1,000,000 vs 1,000 jobs" is not
        print(f"  {ARGS.small_db} does not exist: the big database alone", file=sys.stderr)
    out: dict[str, Any] = {
        "settings": {
            "duration_s": ARGS.duration,
            "rounds": ARGS.rounds,
            "connections": ARGS.connections,
            "threads": ARGS.threads,
            "gunicorn_workers": ARGS.workers,
            "page_cache_s": ARGS.page_cache_s,
            "redis": ARGS.redis,
        },
        "campaign": {"id": big[0], "name": big[1], "experiment": big[2], "jobs": big[3]},
    }
    for key, (db, campaign) in databases.items():
        out[key] = {"db": db, "jobs": count_jobs(db), "campaign_jobs": campaign[3]}
    for mode in ARGS.passes.split(","):
        section = "pages" if mode == "cached" else "uncached"
        figures = one_pass(databases, cached=mode == "cached")
        for key in databases:
            out[key][section] = figures[key]
    return out


def one_pass(databases: dict[str, tuple], cached: bool) -> dict[str, dict]:
    servers: dict[str, Server] = {}
    label = "cached" if cached else "uncached"
    try:
        urls = {}
        for number, (key, (db, campaign)) in enumerate(databases.items()):
            # One Redis database per server: both serve the same campaign ids.
            extra = {"CACHE_URL": redis_url(ARGS.redis_db + number)}
            extra["OPOS_PAGE_CACHE_S"] = str(ARGS.page_cache_s if cached else 0)
            servers[key] = Server(db, ARGS.workers, extra)
            urls[key] = urls_of(campaign, *sign_in(servers[key].base))
        out: dict[str, dict] = {key: {} for key in databases}
        for name in urls["big"]:
            rounds: dict[str, list] = {key: [] for key in servers}
            sizes = {}
            for key, server in servers.items():
                path, headers = urls[key][name]
                sizes[key] = check(server.base, path, headers)
                wrk(server.base + path, headers, ARGS.warmup)
            for _ in range(ARGS.rounds):
                for key, server in servers.items():
                    path, headers = urls[key][name]
                    rounds[key].append(
                        wrk(server.base + path, headers, ARGS.duration / ARGS.rounds)
                    )
            for key in servers:
                result = combine(rounds[key])
                out[key][name] = {"path": urls[key][name][0], "bytes": sizes[key], **result}
                print(
                    f"  {label:8} {databases[key][0]:14} {name:20} "
                    f"p50 {result['p50_us'] / 1000:7.1f} ms  "
                    f"p95 {result['p95_us'] / 1000:7.1f} ms  {result['requests_per_s']:7.1f}/s",
                    file=sys.stderr,
                    flush=True,
                )
        return out
    finally:
        for server in servers.values():
            server.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="bench8")
    parser.add_argument("--small-db", default="bench8_small")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per URL")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each")
    parser.add_argument("--rounds", type=int, default=3, help="alternations big/small per URL")
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", help="write the figures here as JSON")
    parser.add_argument(
        "--passes", default="cached,uncached", help="cached (page cache on), uncached, or both"
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis server")
    parser.add_argument(
        "--redis-db",
        type=int,
        default=11,
        help="first of the two Redis database numbers the servers use: empty, or taken by an "
        "earlier run (they are emptied); a database holding anything else is refused",
    )
    parser.add_argument(
        "--page-cache-s", type=int, default=30, help="OPOS_PAGE_CACHE_S of the cached pass"
    )
    return parser.parse_args(argv)


ARGS: argparse.Namespace


def main(argv: list[str] | None = None) -> None:
    global ARGS
    ARGS = parse_args(argv)
    figures = run()
    emit(figures, ARGS.out)


if __name__ == "__main__":
    main()

"""Benchmark the monitoring pages with a thousand jobs and with a million (not a test).

    .venv/bin/python bench/bench_monitoring.py                   # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench \\
        .venv/bin/python bench/bench_monitoring.py               # PostgreSQL

Works on a scratch test database (Django's ``test_`` database, created and dropped
here), never on the configured one. Builds one campaign of about a thousand jobs
with two days of snapshots, failures and milestones, and times its dashboard, its
progress endpoint, the experiment and operator overviews and /metrics; then fills
the database up to about a million jobs (more campaigns, 2% of their jobs failed)
and times the same pages again, plus the dashboard of one of the big campaigns.
The campaign page should cost about the same in both runs: it reads stage counters
and snapshots, never the jobs (the failure triage reads only failed jobs, by index).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opos.settings")
if "OPOS_DATA_DIR" not in os.environ:
    os.environ["OPOS_DATA_DIR"] = tempfile.mkdtemp(prefix="opos-bench-")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, reset_queries  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402
from django.utils import timezone  # noqa: E402


def timed(fn, repeat: int) -> str:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return f"{statistics.median(times) * 1000:7.1f} ms (best {min(times) * 1000:6.1f})"


def pages(client: Client, small, big=None) -> dict[str, str]:
    urls = {
        "campaign page": f"/monitoring/campaigns/{small.pk}/",
        "campaign progress API": f"/api/v1/campaigns/{small.pk}/progress/",
        "experiment overview": f"/monitoring/experiments/{small.experiment.slug}/",
        "operator overview": "/monitoring/operations/",
        "/metrics": "/metrics",
    }
    if big is not None:
        urls["big campaign page"] = f"/monitoring/campaigns/{big.pk}/"
    return urls


def run(client: Client, urls: dict[str, str], repeat: int) -> None:
    for name, url in urls.items():
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        print(f"   {name:24} {timed(lambda url=url: client.get(url), repeat)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per timing (median)")
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs in the big run")
    args = parser.parse_args()
    settings.OPOS_MAX_JOBS_PER_SAMPLE = 10_000_000
    settings.OPOS_MAX_JOBS_PER_REQUEST = 10_000_000
    settings.OPOS_EXPANSION_BATCH = 5000
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    logging.disable(logging.INFO)
    old = setup_databases(verbosity=0, interactive=False, serialized_aliases=())
    try:
        from campaigns.choices import FailureClass, JobState
        from campaigns.models import Job, Stage
        from monitoring.services import record_snapshots
        from tests.factories import ExperimentFactory, UserFactory, grant
        from tests.monitoring.builders import (
            fail_jobs,
            history,
            launch,
            planned_campaign,
            set_progress,
        )

        print(f"database: {connection.vendor}")
        experiment = ExperimentFactory(slug="dune", name="DUNE")
        operator = grant(UserFactory(username="op"), "operator")
        now = timezone.now()
        start = now - dt.timedelta(days=2)
        small = planned_campaign(experiment, operator, samples=2, events=20_000, per_job=100)
        small = launch(small, operator, at=start)
        set_progress(small, 0.5, running=10)
        fail_jobs(small, 30, FailureClass.OUT_OF_MEMORY)
        fail_jobs(small, 10, FailureClass.WALLTIME)
        steps = 2 * 24 * 12  # every 5 minutes for two days
        history(small, [(start + dt.timedelta(minutes=5 * i), 20 * i) for i in range(steps)])
        record_snapshots()
        client = Client()
        client.force_login(operator)
        print(f"1. {Job.objects.count():,} jobs in the database")
        run(client, pages(client, small), args.repeat)

        t0 = time.perf_counter()
        per_campaign = 250_000  # 2 samples x (50k + 50k + 25k) jobs
        big = None
        while Job.objects.count() < args.jobs:
            c = planned_campaign(
                experiment,
                operator,
                samples=2,
                events=5_000_000,
                per_job=100,
                name=f"filler {Job.objects.count() // per_campaign}",
            )
            c = launch(c, operator, at=start)
            set_progress(c, 0.3, running=50)
            # 2% of the jobs failed (rows and counters), spread over four classes.
            n = per_campaign // 50
            for cls in (
                FailureClass.OUT_OF_MEMORY,
                FailureClass.WALLTIME,
                FailureClass.LOST,
                FailureClass.STORAGE,
            ):
                fail_jobs(c, n // 4, cls)
            big = big or c
        record_snapshots()
        reset_queries()
        print(
            f"2. {Job.objects.count():,} jobs in the database "
            f"(filled in {time.perf_counter() - t0:.0f} s; "
            f"{Job.objects.filter(state=JobState.FAILED).count():,} failed, "
            f"{Stage.objects.count():,} stages)"
        )
        run(client, pages(client, small, big), args.repeat)
        # What /metrics and the estimates share with the scheduler: its five input queries.
        from campaigns.services.planning import load_inputs

        print(f"   (scheduler's load_inputs {timed(load_inputs, args.repeat)})")
    finally:
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()

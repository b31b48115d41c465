"""Build a benchmark database at production scale, with COPY, in minutes.

    .venv/bin/python bench/generate.py                       # bench8: 1,000,000 jobs
    .venv/bin/python bench/generate.py --db bench8_small --jobs 1000

Creates (drops first) the PostgreSQL database ``--db`` (its name must start with
``bench``), runs the migrations on it, and loads, in one transaction:

* ``--experiments`` experiments, each with physics groups, members, a training
  record, registered production code and a gen -> sim -> reco workflow template;
* ``--requests`` production requests in every state; 60% of them scheduled into
  ``--campaigns`` campaigns (active, paused, completed, planned, cancelled), with
  one or two samples each, their stages and output datasets;
* ``--jobs`` jobs over those stages, exactly ``--active`` of them in flight (queued,
  running, held) at the batch system, the others succeeded, failed and retried, lost,
  ready, planned or cancelled as the campaign's state and progress make them; the
  submissions (arrays) they went in, one output file per succeeded job, stage and
  dataset counters that match the rows;
* progress snapshots every ``--snapshot-interval`` seconds over the last 48 hours
  and hourly before (what the recorder and its thinning leave), milestones,
  campaign events, request transitions and comments.

The structure (experiments, requests, campaigns, samples, stages) depends only on
the first three sizes and ``--seed``, not on ``--jobs``. ``--from bench8 --keep-jobs
1000`` derives a copy in which only 1,000 job rows remain and everything else (counters,
snapshots) is unchanged: the pages show the same numbers from both, and only the size of
the jobs table differs, which is what the page benchmark compares.

Users: ``bench-op`` (operator) and one liaison and two physicists per experiment, all
with the password ``BENCH_PASSWORD`` of bench/dataset.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import check_name, create_database, setup_django


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="bench8", help="database to (re)create (bench*)")
    parser.add_argument("--experiments", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--campaigns", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument(
        "--active", type=int, default=None, help="jobs in flight (default: a tenth of --jobs)"
    )
    parser.add_argument("--snapshot-interval", type=int, default=300, help="seconds")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument(
        "--from",
        dest="source",
        help="derive --db from this generated database, keeping only --keep-jobs job rows",
    )
    parser.add_argument("--keep-jobs", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.source:
        check_name(args.source)
    if args.active is None:
        args.active = args.jobs // 10
    if min(args.experiments, args.requests, args.campaigns) < 1 or args.jobs < 0:
        parser.error("sizes must be positive")
    if args.active > args.jobs:
        parser.error("--active cannot exceed --jobs")
    check_name(args.db)
    return args


def derive(args: argparse.Namespace) -> None:
    """A copy of ``--from`` in which only ``--keep-jobs`` job rows remain.

    Everything else stays as it is: stage and dataset counters, snapshots, milestones,
    requests, campaigns. The pages therefore show the same numbers from both databases and
    only the size of the jobs table (and of the output files) differs, which is what the
    page benchmark compares ("no hidden scans"). The rows kept are those of the campaign
    the pages show, its failed and lost attempts first, so its failure triage is the same.
    """
    import psycopg

    from bench.common import db_url, target_campaign

    t0 = time.perf_counter()
    create_database(args.db, template=args.source)
    with psycopg.connect(db_url(args.db)) as conn:
        campaign = target_campaign(conn)
        conn.execute(
            """
            CREATE TEMPORARY TABLE keep AS
            SELECT j.id FROM campaigns_job j JOIN campaigns_stage s ON s.id = j.stage_id
            WHERE s.campaign_id = %s
            ORDER BY j.state IN ('failed', 'lost') DESC, j.id LIMIT %s
            """,
            [campaign[0], args.keep_jobs],
        )
        conn.execute("ALTER TABLE keep ADD PRIMARY KEY (id)")
        conn.execute(
            "UPDATE campaigns_job SET parent_id = NULL WHERE id IN (SELECT id FROM keep) "
            "AND parent_id NOT IN (SELECT id FROM keep)"
        )
        conn.execute(
            "DELETE FROM campaigns_outputfile WHERE job_id IS NULL "
            "OR job_id NOT IN (SELECT id FROM keep)"
        )
        conn.execute(
            "DELETE FROM campaigns_stuckflag WHERE job_id IS NOT NULL "
            "AND job_id NOT IN (SELECT id FROM keep)"
        )
        deleted = conn.execute(
            "DELETE FROM campaigns_job WHERE id NOT IN (SELECT id FROM keep)"
        ).rowcount
        conn.commit()
        conn.autocommit = True
        # Rewrite the tables: a table emptied by DELETE keeps its size on disk.
        conn.execute("VACUUM FULL ANALYZE campaigns_job")
        conn.execute("VACUUM FULL ANALYZE campaigns_outputfile")
        kept = conn.execute("SELECT count(*) FROM campaigns_job").fetchone()[0]
    print(
        f"{args.db}: {args.source} with {kept:,} of its jobs ({deleted:,} removed; campaign "
        f"{campaign[1]} kept) in {time.perf_counter() - t0:.0f} s"
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.source:
        derive(args)
        return
    t0 = time.perf_counter()
    create_database(args.db)
    setup_django(args.db)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    print(f"{args.db}: created and migrated in {time.perf_counter() - t0:.1f} s", flush=True)
    from bench.activity import Generator

    counts = Generator(args).run()
    t1 = time.perf_counter()
    connection.close()
    import psycopg

    from bench.common import db_url

    with psycopg.connect(db_url(args.db), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    print(f"  vacuum     {time.perf_counter() - t1:6.1f} s")
    for table in sorted(counts):
        print(f"  {table:40} {counts[table]:>10,}")
    print(f"{args.db}: {counts.get('campaigns_job', 0):,} jobs in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

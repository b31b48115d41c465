"""Benchmark: what-if admission at production scale (not part of the tests).

    .venv/bin/python bench/bench_whatif.py [--db bench_whatif] [--repeat 9] [--out r.json]

Creates the PostgreSQL benchmark database ``--db`` (dropped first, and again at the end
unless ``--keep``; see bench/common.py), builds the shape of ``bench_scheduler``: 500
campaigns holding 100,000 planned jobs (one of them planned, not launched), and times
the answer of ``GET /api/v1/campaigns/{id}/what-if/`` without HTTP: the live state read
from the database (``load_inputs``), the projection run twice (with and without the
change), the effects named and the commitments they move. Each figure is the median of
``--repeat`` runs, with the fastest and the slowest.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import bench_scheduler  # noqa: E402
from bench.common import create_database, drop_database, setup_django  # noqa: E402


def timed(fn, repeat: int) -> tuple[dict, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return {
        "median_s": statistics.median(times),
        "best_s": min(times),
        "worst_s": max(times),
        "runs": len(times),
    }, result


def fmt(t: dict) -> str:
    return (
        f"{t['median_s'] * 1000:7.1f} ms median of {t['runs']} "
        f"(spread {t['best_s'] * 1000:.1f} - {t['worst_s'] * 1000:.1f})"
    )


def measure(repeat: int) -> dict:
    from django.core.management import call_command

    from campaigns.choices import CampaignState
    from campaigns.models import Campaign
    from campaigns.services.planning import load_inputs
    from monitoring.whatif_api import run

    call_command("migrate", verbosity=0)
    start = time.perf_counter()
    bench_scheduler.build()
    out: dict = {"campaigns": bench_scheduler.CAMPAIGNS, "jobs": bench_scheduler.JOBS}
    out["build_s"] = time.perf_counter() - start
    subject = Campaign.objects.order_by("id").first()
    Campaign.objects.filter(pk=subject.pk).update(state=CampaignState.PLANNED, launched_at=None)
    subject.refresh_from_db()
    inputs = load_inputs(campaign_ids=())
    jobs = sum(s.remaining for c in inputs.input.campaigns for s in c.stages)
    print(f"live state: {len(inputs.input.campaigns)} open campaigns, {jobs:,} jobs to run")
    out["load_inputs"], _ = timed(lambda: load_inputs(campaign_ids=()), repeat)
    print(f"reading the live state:      {fmt(out['load_inputs'])}")
    out["launch"], answer = timed(lambda: run(subject, {"change": "launch"}), repeat)
    print(f"what-if launch (whole answer): {fmt(out['launch'])}; {len(answer['effects'])} moved")
    other = Campaign.objects.filter(state=CampaignState.ACTIVE).order_by("id").first()
    out["priority"], answer = timed(
        lambda: run(other, {"change": "priority", "priority": "low"}), repeat
    )
    print(
        f"what-if priority (whole answer): {fmt(out['priority'])}; {len(answer['effects'])} moved"
    )
    out["within_1s"] = max(out["launch"]["median_s"], out["priority"]["median_s"]) < 1.0
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="bench_whatif", help="benchmark database (bench*)")
    parser.add_argument("--repeat", type=int, default=9, help="runs per timing (median)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--out", help="write the figures here as JSON")
    args = parser.parse_args(argv)
    create_database(args.db)
    setup_django(args.db)
    try:
        figures = measure(args.repeat)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(args.db)
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=1, default=str))


if __name__ == "__main__":
    main()

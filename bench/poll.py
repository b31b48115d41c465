"""Benchmarks 1 (status reconciliation) and 5 (memory of a poll), on a generated database.

    .venv/bin/python -m bench.poll --db bench8 [--repeat 5] [--out result.json]
    .venv/bin/python -m bench.poll --db bench8 --memory       # one poll, peak RSS

The batch system is replaced by a stub that answers ``status()`` at once with a prepared
poll result, so what is timed is our code after the backend call: ``polling.poll()``
reads the jobs in flight, compares, and writes what changed (the real code path, with
the stage counters). Compared with:

* the floor: one raw psycopg query reading the current states of the polled jobs, and
  one ``UPDATE ... FROM unnest(...)`` of the changed ones, then COMMIT;
* the naive way (for the record): the jobs as model instances, ``save()`` on each one
  that changed.

Every trial starts from the same state: the jobs in flight when the database was
generated are kept in ``bench_poll_baseline`` and restored (then VACUUM) before each
trial, untimed. The 10,000-active case parks the other 90,000 in ``planned`` first.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import db_url, emit, setup_django

ACTIVE = ["held", "queued", "running"]


# --- the database before each trial -------------------------------------------------------------


def raw_connection():
    import psycopg

    return psycopg.connect(db_url(ARGS.db))


def ensure_baseline(conn) -> int:
    """Remember the jobs in flight and the stage counters as generated (first run only)."""
    with conn.transaction():
        exists = conn.execute("SELECT to_regclass('bench_poll_baseline')").fetchone()[0]
        if not exists:
            conn.execute(
                """
                CREATE TABLE bench_poll_baseline AS
                SELECT id, stage_id, backend, batch_id, state, state_since, started,
                       failure_reason
                FROM campaigns_job
                WHERE state = ANY(%s) AND outcome = '' AND batch_id <> ''
                ORDER BY id
                """,
                [ACTIVE],
            )
            conn.execute("ALTER TABLE bench_poll_baseline ADD PRIMARY KEY (id)")
            conn.execute(
                """
                CREATE TABLE bench_stage_baseline AS
                SELECT id, n_queued, n_running, n_held FROM campaigns_stage
                """
            )
        return conn.execute("SELECT count(*) FROM bench_poll_baseline").fetchone()[0]


def restore(conn, keep_every: int = 1) -> None:
    """Put the jobs in flight back as generated; with ``keep_every`` k > 1 only one in k
    stays in flight (the rest are parked in ``planned``). Then VACUUM, so that every trial
    sees the same tables and indexes."""
    with conn.transaction():
        conn.execute(
            """
            UPDATE campaigns_job j
            SET state = b.state, outcome = '', exit_code = NULL, finished = NULL,
                failure_reason = b.failure_reason, state_since = b.state_since,
                started = b.started
            FROM (SELECT *, row_number() OVER (ORDER BY id) - 1 AS rank
                  FROM bench_poll_baseline) b
            WHERE j.id = b.id AND b.rank %% %s = 0
              AND (j.state <> b.state OR j.outcome <> ''
                   OR j.started IS DISTINCT FROM b.started)
            """,
            [keep_every],
        )
        if keep_every > 1:
            conn.execute(
                """
                UPDATE campaigns_job j SET state = 'planned'
                FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS rank
                      FROM bench_poll_baseline) b
                WHERE j.id = b.id AND b.rank %% %s <> 0 AND j.state <> 'planned'
                """,
                [keep_every],
            )
        conn.execute(
            """
            UPDATE campaigns_stage s
            SET n_queued = b.n_queued, n_running = b.n_running, n_held = b.n_held
            FROM bench_stage_baseline b
            WHERE s.id = b.id
              AND (s.n_queued, s.n_running, s.n_held) <> (b.n_queued, b.n_running, b.n_held)
            """
        )
    autocommit = conn.autocommit
    conn.autocommit = True
    conn.execute("VACUUM campaigns_job")
    conn.execute("VACUUM campaigns_stage")
    conn.autocommit = autocommit


# --- the poll result ----------------------------------------------------------------------------


def poll_result(conn, keep_every: int, change_every: int) -> tuple[dict[str, dict], int]:
    """What the batch systems answer, per backend: every polled job's state, one in
    ``change_every`` (of the whole baseline, so the same jobs whatever is parked) changed
    (none with 0).

    Queued jobs start running, held ones are released, running ones end (four in five
    succeed, one fails with exit code 1): about half the changes are moves between
    in-flight states, half are ends that finalize will take over.
    """
    from campaigns.batch import BatchState, JobStatus, StatusAnswer

    rows = conn.execute(
        """
        SELECT backend, batch_id, state, row_number() OVER (ORDER BY id) - 1
        FROM bench_poll_baseline ORDER BY id
        """
    ).fetchall()
    result: dict[str, dict] = {}
    changed = 0
    for backend, batch_id, state, rank in rows:
        if rank % keep_every:
            continue
        if change_every and rank % change_every == 0:
            changed += 1
            if state == "queued" or state == "held":
                status = JobStatus(BatchState.RUNNING)
            elif changed % 5:
                status = JobStatus(BatchState.SUCCEEDED, 0)
            else:
                status = JobStatus(BatchState.FAILED, 1, "exit code 1")
        else:
            status = JobStatus(BatchState(state))
        answer = result.get(backend)
        if answer is None:
            # As the real backends answer: by batch id and by state (see StatusAnswer).
            answer = result[backend] = StatusAnswer()
        answer[batch_id] = status
    conn.commit()
    return result, changed


def out_of_the_collectors_sight() -> None:
    """Move the prepared poll results (200,000 status tuples) out of the cyclic garbage
    collector's full passes (``gc.freeze``).

    They are the stub's, kept for the whole run; a real backend makes its answer during
    ``status()`` and drops it after the poll. Left in sight, every full pass of the
    collector walked them too (100-200 ms with 100,000 jobs in flight), at whichever
    trial the pass happened to fall on, ours or the floor's. What the poller itself keeps
    (its view of the jobs in flight) is made after this, in the trials, and stays in
    sight."""
    gc.collect()
    gc.freeze()


class StubBackend:
    """A batch system that answers a poll at once with a prepared result."""

    def __init__(self, statuses: dict) -> None:
        self.statuses = statuses

    def status(self, jobs):
        return self.statuses

    def cancel(self, batch_ids) -> None:
        pass


def install_stubs(result: dict[str, dict]) -> None:
    from campaigns.execution import backends

    stubs = {name: StubBackend(statuses) for name, statuses in result.items()}
    backends.backend = lambda name: stubs.get(name) or StubBackend({})


# --- the three ways -----------------------------------------------------------------------------


def ours(expected: int) -> dict[str, Any]:
    from campaigns.execution import polling

    report = polling.poll()
    written = report.moved + report.finished
    if written != expected or report.errors:
        raise SystemExit(f"poll wrote {written} changes, expected {expected}: {report}")
    return {"moved": report.moved, "finished": report.finished, "polled": report.polled}


def floor(conn, result: dict[str, dict], expected: int) -> None:
    """One read of the polled jobs' current states, one UPDATE FROM unnest, COMMIT."""
    answer = {}
    for statuses in result.values():
        answer.update(statuses)
    rows = conn.execute(
        "SELECT id, batch_id, state FROM campaigns_job "
        "WHERE state = ANY(%s) AND outcome = '' AND batch_id <> ''",
        [ACTIVE],
    ).fetchall()
    ids, states = [], []
    for pk, batch_id, state in rows:
        status = answer.get(batch_id)
        if status is not None and status.state != state:
            ids.append(pk)
            states.append(str(status.state))
    conn.execute(
        "UPDATE campaigns_job j SET state = v.state "
        "FROM unnest(%s::bigint[], %s::text[]) AS v(id, state) WHERE j.id = v.id",
        [ids, states],
    )
    conn.commit()
    if len(ids) != expected:
        raise SystemExit(f"floor wrote {len(ids)} changes, expected {expected}")


def naive(result: dict[str, dict], expected: int) -> None:
    """The ORM way: every job in flight as a model instance, save() each that changed."""
    from campaigns.models import Job

    answer = {}
    for statuses in result.values():
        answer.update(statuses)
    written = 0
    for job in (
        Job.objects.filter(state__in=ACTIVE, outcome="")
        .exclude(batch_id="")
        .iterator(chunk_size=2000)
    ):
        status = answer.get(job.batch_id)
        if status is not None and status.state != job.state:
            job.state = str(status.state)
            job.save()
            written += 1
    if written != expected:
        raise SystemExit(f"naive wrote {written} changes, expected {expected}")


# --- the benchmark ------------------------------------------------------------------------------


def trial(conn, keep_every: int, fn, before=None) -> float:
    restore(conn, keep_every)
    if before is not None:
        before()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def warm(unchanged: dict[str, dict], changed: dict[str, dict]):
    """Untimed, before a steady-state trial: the poller's view of the jobs in flight is
    rebuilt (the restore changed the database behind its back) by a poll in which nothing
    changed, as the previous minute's poll would have left it, and the garbage collector
    catches up with it; then the batch systems answer with the changes."""
    from campaigns.execution import polling
    from campaigns.execution.inflight import KNOWN

    def before() -> None:
        KNOWN.forget()
        install_stubs(unchanged)
        report = polling.poll()
        if report.moved or report.finished:
            raise SystemExit(f"the warm-up poll wrote changes: {report}")
        install_stubs(changed)
        # The view is a minute old in production: the collector's passes that its full
        # read set off are behind it, not in the next poll.
        gc.collect()

    return before


def cold(changed: dict[str, dict]):
    """Untimed, before a cold trial: no view (a new worker process, or the periodic full
    read): the poll reads every job in flight."""
    from campaigns.execution.inflight import KNOWN

    def before() -> None:
        KNOWN.forget()
        install_stubs(changed)

    return before


def summary(times: list[float]) -> dict[str, Any]:
    return {
        "median_s": statistics.median(times),
        "best_s": min(times),
        "runs": [round(t, 4) for t in times],
    }


def reconciliation() -> dict[str, Any]:
    from django.db import connection

    conn = raw_connection()
    total = ensure_baseline(conn)
    out: dict[str, Any] = {"active_generated": total}
    # 1a. 100,000 in flight, 10,000 changed: ours in the steady state (the poller's view
    # of the jobs in flight warm) and cold (it reads every job in flight), and the floor,
    # interleaved; naive once.
    result, changed = poll_result(conn, keep_every=1, change_every=10)
    unchanged, _ = poll_result(conn, keep_every=1, change_every=0)
    out_of_the_collectors_sight()
    times: dict[str, list[float]] = {"ours": [], "cold": [], "floor": []}
    breakdown = {}
    for k in range(ARGS.repeat + 1):  # the first round warms the caches, untimed
        t_ours = trial(conn, 1, lambda: breakdown.update(ours(changed)), warm(unchanged, result))
        t_cold = trial(conn, 1, lambda: ours(changed), cold(result))
        t_floor = trial(conn, 1, lambda: floor(conn, result, changed))
        if k:
            times["ours"].append(t_ours)
            times["cold"].append(t_cold)
            times["floor"].append(t_floor)
    out["poll_100k_10k"] = {
        "active": total,
        "changed": changed,
        "ours": summary(times["ours"]),
        "cold": summary(times["cold"]),
        "floor": summary(times["floor"]),
        "report": breakdown,
    }
    # Where our time goes: the read of the jobs in flight alone, and apply() alone.
    out["poll_100k_10k"]["parts"] = parts(conn, result, changed)
    if not ARGS.skip_naive:
        out["poll_100k_10k"]["naive"] = summary([trial(conn, 1, lambda: naive(result, changed))])
    # 1b. The same 1,000 changes with 100,000 and with 10,000 jobs in flight.
    scaling: dict[str, Any] = {}
    for label, keep_every in (("100k", 1), ("10k", 10)):
        result, changed = poll_result(conn, keep_every=keep_every, change_every=100)
        unchanged, _ = poll_result(conn, keep_every=keep_every, change_every=0)
        out_of_the_collectors_sight()
        ours_t, cold_t, floor_t = [], [], []
        for k in range(ARGS.repeat + 1):
            t_ours = trial(conn, keep_every, lambda c=changed: ours(c), warm(unchanged, result))
            t_cold = trial(conn, keep_every, lambda c=changed: ours(c), cold(result))
            t_floor = trial(conn, keep_every, lambda r=result, c=changed: floor(conn, r, c))
            if k:
                ours_t.append(t_ours)
                cold_t.append(t_cold)
                floor_t.append(t_floor)
        scaling[label] = {
            "active": sum(len(v) for v in result.values()),
            "changed": changed,
            "ours": summary(ours_t),
            "cold": summary(cold_t),
            "floor": summary(floor_t),
        }
    out["poll_1k_scaling"] = scaling
    restore(conn)
    conn.close()
    connection.close()
    return out


def parts(conn, result: dict[str, dict], changed: int) -> dict[str, Any]:
    """Timings of the pieces of ``poll()``: the in-flight read, and ``apply()`` alone."""
    from django.utils import timezone

    from campaigns.execution import polling
    from campaigns.execution.inflight import read

    reads, applies = [], []
    for _ in range(ARGS.repeat):
        restore(conn)
        start = time.perf_counter()
        jobs: dict[str, list] = {}
        for row in read():
            jobs.setdefault(row.backend, []).append(row)
        reads.append(time.perf_counter() - start)
        changes = [
            change
            for name, rows in jobs.items()
            for change in polling.compare(rows, result.get(name, {}))
        ]
        start = time.perf_counter()
        moved, finished = polling.apply(changes, timezone.now())
        applies.append(time.perf_counter() - start)
        if moved + finished != changed:
            raise SystemExit(f"apply wrote {moved + finished}, expected {changed}")
    return {"in_flight_read": summary(reads), "apply": summary(applies)}


def memory() -> dict[str, Any]:
    """One poll of every job in flight, 10% changed; this process's peak RSS."""
    from django.db import connection

    conn = raw_connection()
    ensure_baseline(conn)
    restore(conn)
    before_setup = ARGS.rss_at_start
    result, changed = poll_result(conn, keep_every=1, change_every=10)
    install_stubs(result)
    connection.ensure_connection()
    rss_ready = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    report = ours(changed)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    restore(conn)
    conn.close()
    return {
        "polled": report["polled"],
        "changed": changed,
        "rss_before_django_mb": before_setup,
        "rss_ready_mb": round(rss_ready, 1),
        "rss_peak_mb": round(peak, 1),
        "poll_s": seconds,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="bench8")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--memory", action="store_true", help="benchmark 5 instead of 1")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--out", help="write the figures here as JSON")
    return parser.parse_args(argv)


ARGS: argparse.Namespace


def main(argv: list[str] | None = None) -> None:
    global ARGS
    rss_at_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ARGS = parse_args(argv)
    ARGS.rss_at_start = round(rss_at_start, 1)
    setup_django(ARGS.db)
    figures = memory() if ARGS.memory else reconciliation()
    emit(figures, ARGS.out)


if __name__ == "__main__":
    main()

"""The submission protocol: no job is submitted twice, none is forgotten.

For each stage the scheduler lets submit ``n`` jobs:

1. **claim** (one transaction): lock up to ``n`` ready jobs of the stage that no
   submission holds (``FOR UPDATE SKIP LOCKED``), read again, under those locks, which jobs
   the submissions in flight hold and drop those, and record a ``Submission`` with a unique
   token in state ``submitting`` that lists its jobs (``job_ids``, element order). COMMIT.
   From here on the database knows the token and the jobs before the batch system does.
   The job rows are not written: linking 10,000 of them here and writing them again in
   step 4 cost twice the database work of one pass (and a foreign-key check per row).
2. **prepare**: write the array's job descriptions into its folder, two files whatever its
   size (idempotent: files only, each written whole or not at all). Element folders are
   made by the backend's job shim when the element starts, not here.
3. **submit**: one ``backend.submit`` of the whole array, with the token.
4. **record** (one transaction): the jobs linked to the submission with their batch ids
   (compare-and-set: no other submission holds them), ``ready -> queued``, stage counters,
   submission ``submitted``. COMMIT.

Claim and record send a few statements whatever the array's size and build no model
instance per job (on PostgreSQL one ``SELECT ... FOR UPDATE SKIP LOCKED`` claims, one
``UPDATE ... FROM unnest(...)`` records): 10,000 jobs must cost about what the batch
system's own call and one write of the rows cost (the submission bar of
docs/performance.md, measured by bench/submit.py).

A crash between 1 and 4 leaves the submission in ``submitting``; ``recovery`` asks the
backend for the token after a grace period longer than the submit task's hard time limit
(so the worker that made it is gone), or at once when the process that claimed it (recorded
with the claim) is known to be gone, and adopts what exists, submitting only what does
not. Element ``i`` of a submission is always its ``i``-th job by ``(index, id)``, so the
mapping can be rebuilt from the database alone.

Tests simulate the worker being killed between steps with :func:`checkpoint`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from experiments import endpoints
from requests_app.choices import WORK_HELD_STATES

from ..batch import ArraySpec, BackendError, BackendUnavailable, Placement
from ..batch.base import JOB_READABLE, write_atomic
from ..choices import JobState, SubmissionState
from ..models import Job, OutputFile, Stage, Submission
from ..services.controls import placement_of, priority_level
from ..services.planning import plan_cycle
from ..services.testlaunch import check_test_launches
from . import backends, faults, heartbeat
from .attempts import WORK_FIELDS
from .descriptions import common_description, element_line
from .wrapper import ARRAY_FILE, JOBS_FILE, SPEC_FILE

__all__ = ["ARRAY_FILE", "CHECKPOINTS", "JOBS_FILE", "SPEC_FILE", "submit_ready", "submit_stage"]

log = logging.getLogger(__name__)

CHECKPOINTS = ("claimed", "prepared", "submitted", "recorded")
"""Where a worker can die between two steps of the protocol (tests inject crashes here)."""
ORDER = ("index", "id")
"""Element order within a submission."""
FAILED_SUBMISSION_PAUSE_S = 60
"""A stage whose last submission the backend refused waits this long before trying again."""
UNAVAILABLE = "backend unavailable: "
"""Prefix of the error of a submission whose backend call did not get an answer."""
BULK = 500


class SimulatedCrash(BaseException):
    """Raised at a checkpoint by tests: the worker "dies" there (BaseException: nothing in
    the service swallows it, as nothing would survive a SIGKILL)."""


crash_hook: Callable[[str], None] | None = None
"""Tests set this to a callable that raises :class:`SimulatedCrash` at a chosen checkpoint."""


def checkpoint(name: str) -> None:
    if crash_hook is not None:
        crash_hook(name)


@dataclass
class SubmitReport:
    """What one ``submit_ready`` cycle did."""

    submissions: list[int] = field(default_factory=list)
    jobs: int = 0
    released_retries: int = 0
    unavailable: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


def new_token(stage_id: int) -> str:
    return f"opos-s{stage_id}-{uuid.uuid4().hex[:16]}"


# --- the cycle ------------------------------------------------------------------------------


def release_backoffs(now: datetime | None = None) -> int:
    """Retries whose backoff is over become ready (compare-and-set ``planned -> ready``)."""
    now = now or timezone.now()
    due: dict[int, list[int]] = defaultdict(list)
    for job_id, stage_id in Job.objects.filter(
        state=JobState.PLANNED, not_before__isnull=False, not_before__lte=now
    ).values_list("id", "stage_id")[:5000]:
        due[stage_id].append(job_id)
    released = 0
    for stage_id, ids in due.items():
        with transaction.atomic():
            n = Job.objects.filter(pk__in=ids, state=JobState.PLANNED).update(
                state=JobState.READY, state_since=now, not_before=None
            )
            if n:
                # Counted from what the compare-and-set changed: a concurrent run counts 0.
                Stage.objects.filter(pk=stage_id).update(
                    n_planned=F("n_planned") - n, n_ready=F("n_ready") + n
                )
        released += n
    return released


def submit_ready(now: datetime | None = None) -> SubmitReport:
    """One cycle: ask the scheduler what may run and submit it, one array per stage.

    A backend that is unavailable is skipped for the rest of the cycle (its submissions in
    flight are resolved later); a refusal of one stage does not stop the others.
    """
    report = SubmitReport()
    report.released_retries = release_backoffs(now)
    # Test launches whose jobs finished pass or fail before the plan (campaigns paused by
    # a failed test submit nothing more this cycle).
    check_test_launches()
    plan = plan_cycle(now)
    # A campaign the scheduler could not read is blocked with the reason; the rest go on.
    for campaign_id, exc in plan.inputs.failed.items():
        faults.record_fault(campaign_id, faults.SCHEDULING, exc)
        report.errors.append(f"campaign {campaign_id}: {faults.fault_text(faults.SCHEDULING, exc)}")
    faults.clear_faults(
        (cid for cid, text in plan.inputs.faults.items() if text.startswith(faults.SCHEDULING)),
        faults.SCHEDULING,
    )
    grants = plan.submissions()
    if not grants:
        return report
    stage_ids = [stage_id for stage_id, _n in grants]
    info = {
        row["id"]: row
        for row in Stage.objects.filter(pk__in=stage_ids).values(
            "id", "campaign_id", "campaign__backend", "campaign__fault", "request__state"
        )
    }
    since = (now or timezone.now()) - timedelta(seconds=FAILED_SUBMISSION_PAUSE_S)
    refused = set(
        Submission.objects.filter(
            stage_id__in=stage_ids, state=SubmissionState.FAILED, updated__gte=since
        ).values_list("stage_id", flat=True)
    )
    report.unavailable |= troubled_backends()
    configured = endpoints.endpoints()
    failed: dict[int, str] = {}
    succeeded: set[int] = set()
    for stage_id, n in grants:
        row = info.get(stage_id)
        if row is None or row["request__state"] in WORK_HELD_STATES or stage_id in refused:
            continue
        name, campaign_id = row["campaign__backend"], row["campaign_id"]
        if name in report.unavailable or campaign_id in failed:
            continue
        # Anything else a stage raises blocks its campaign only (recorded, retried next cycle).
        with faults.isolated(campaign_id, faults.SUBMISSION, failed, savepoint=False):
            if name not in configured:
                # Its endpoint left the settings: claim nothing (no submission could be
                # resolved there); the campaign is blocked with the reason until it is back.
                raise ValueError(endpoints.endpoint_problem(name))
            try:
                for submission in submit_stage(stage_id, n):
                    report.submissions.append(submission.pk)
                    report.jobs += submission.size
                if row["campaign__fault"]:
                    succeeded.add(campaign_id)
            except BackendUnavailable as exc:
                log.warning("backend %s unavailable, submissions wait: %s", name, exc)
                report.unavailable.add(name)
            except BackendError as exc:
                log.error("stage %s: submission refused: %s", stage_id, exc)
                report.errors.append(f"stage {stage_id}: {exc}")
    report.errors += [f"campaign {cid}: {text}" for cid, text in failed.items()]
    faults.clear_faults(succeeded - failed.keys(), faults.SUBMISSION)
    return report


def troubled_backends() -> set[str]:
    """Backends that did not answer a submission lately and still do not answer.

    Without this, every cycle during an outage would claim more jobs into submissions that
    then wait out the grace period; a cheap probe (finding the troubled token) decides.
    """
    latest: dict[str, str] = {}
    for name, token in (
        Submission.objects.filter(state=SubmissionState.SUBMITTING, error__startswith=UNAVAILABLE)
        .order_by("created")
        .values_list("backend", "token")
    ):
        latest[name] = token
    down = set()
    for name, token in latest.items():
        try:
            backends.backend(name).find(token)
        except BackendUnavailable:
            down.add(name)
        except BackendError:
            pass  # it answered: reachable again
    return down


def submit_stage(stage_id: int, limit: int) -> list[Submission]:
    """Claim up to ``limit`` ready jobs of a stage and submit them (one array per resource
    request: retries asking for more memory or walltime go in arrays of their own)."""
    stage = Stage.objects.select_related(*STAGE_RELATED).get(pk=stage_id)
    claimed = claim(stage, limit)
    checkpoint("claimed")
    done = []
    for submission, rows in claimed:
        submit_claimed(submission, stage, jobs=rows)
        done.append(submission)
    return done


# What array_spec reads besides the stage: where the work runs and its priority.
STAGE_RELATED = ("campaign", "campaign__experiment", "request")

PREPARE_FIELDS = ("id", "index", "attempt", *WORK_FIELDS)
"""What prepare needs of each job; claim returns it so that prepare need not read it again."""

Rows = list[dict[str, Any]]


def claim(stage: Stage, limit: int) -> list[tuple[Submission, Rows]]:
    """Step 1: record submissions in ``submitting`` with the jobs they claim; commit.

    Returns each submission with its jobs' fields (:data:`PREPARE_FIELDS`) in element order.
    """
    with transaction.atomic():
        held = claimed_ids(stage.pk)
        rows = _lock_ready(stage, limit, held)
        if not rows:
            return []
        # Another worker's claim may have committed between the read above and our locks
        # (its rows were locked until then, so we skipped or waited for them): read again,
        # now that we hold the locks, and leave what it took. On SQLite the write lock taken
        # at BEGIN (IMMEDIATE) already orders the two claims.
        again = claimed_ids(stage.pk)
        if again != held:
            rows = [row for row in rows if row["id"] not in again]
        groups = _grouped(rows)
        claimant = heartbeat.current_claimant()  # recovery resolves at once if it dies
        submissions = Submission.objects.bulk_create(
            [
                Submission(
                    token=new_token(stage.pk),
                    stage=stage,
                    backend=stage.campaign.backend,
                    state=SubmissionState.SUBMITTING,
                    size=len(group),
                    job_ids=[row["id"] for row in group],
                    **claimant,
                )
                for group in groups
            ]
        )
    return list(zip(submissions, groups, strict=True))


def claimed_ids(stage_id: int) -> set[int]:
    """Jobs of the stage that submissions in flight (``submitting``) hold."""
    held: set[int] = set()
    for ids in Submission.objects.filter(
        stage_id=stage_id, state=SubmissionState.SUBMITTING
    ).values_list("job_ids", flat=True):
        held.update(ids or ())
    return held


def element_ids(submission: Submission) -> list[int]:
    """The submission's jobs in element order: its claim while ``submitting``, else (and for
    submissions claimed by earlier versions, which linked the jobs at once) its links."""
    if submission.job_ids:
        return list(submission.job_ids)
    return list(
        Job.objects.filter(submission=submission).order_by(*ORDER).values_list("id", flat=True)
    )


def _lock_ready(stage: Stage, limit: int, held: set[int]) -> Rows:
    """Lock and read up to ``limit`` ready jobs no submission holds, in element order."""
    if connection.vendor != "postgresql":
        query = Job.objects.select_for_update(skip_locked=True).filter(
            stage=stage, state=JobState.READY, submission__isnull=True
        )
        if held:
            query = query.exclude(pk__in=held)
        return list(query.order_by(*ORDER).values(*PREPARE_FIELDS)[:limit])
    columns = ", ".join(connection.ops.quote_name(f) for f in PREPARE_FIELDS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns} FROM campaigns_job WHERE stage_id = %s AND state = %s "  # noqa: S608 - names are ours
            "AND submission_id IS NULL AND NOT (id = ANY(%s::bigint[])) "
            "ORDER BY index, id LIMIT %s FOR UPDATE SKIP LOCKED",
            [stage.pk, JobState.READY, sorted(held), limit],
        )
        rows = [dict(zip(PREPARE_FIELDS, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        # Django's psycopg setup hands jsonb over as text; the ORM would decode it.
        if isinstance(row["input_files"], str):
            row["input_files"] = json.loads(row["input_files"])
        if isinstance(row["parameters"], str):
            row["parameters"] = json.loads(row["parameters"])
    return rows


def _grouped(rows: Rows) -> list[Rows]:
    """Rows split by resource request and parameter overrides (one array shares both),
    each group in element order ``(index, id)``."""
    groups: dict[tuple[Any, Any, str], Rows] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r["index"], r["id"])):
        params = json.dumps(row.get("parameters") or {}, sort_keys=True)
        groups[(row["memory_mb"], row["walltime_s"], params)].append(row)
    return sorted(groups.values(), key=len, reverse=True)


def submit_claimed(
    submission: Submission,
    stage: Stage | None = None,
    found: Sequence[str] = (),
    jobs: Rows | None = None,
) -> None:
    """Steps 2-4 for a claimed submission: prepare, call the backend, record.

    ``found`` are the batch ids the backend already has for the first elements (recovery of
    an array cut short): only the elements after them are submitted. ``jobs`` are the rows
    claim returned (read again when not given).
    """
    stage = stage or Stage.objects.select_related(*STAGE_RELATED).get(pk=submission.stage_id)
    start = len(found)
    try:
        jobs, paths = prepare_with_paths(submission, stage, jobs)
    except OSError as exc:
        # The work area is full or unwritable: nothing reached the batch system yet, so the
        # jobs go back to ready and the stage pauses (a refused submission).
        problem = BackendError(f"cannot write the job descriptions: {exc.strerror or exc}")
        refused(submission, problem)
        raise problem from exc
    checkpoint("prepared")
    spec = array_spec(submission, stage, jobs, paths)
    try:
        new_ids = backends.backend(submission.backend).submit(spec, start)
    except BackendUnavailable as exc:
        # The call may or may not have reached the batch system: only the token can tell,
        # so the submission stays `submitting` for recovery (after the grace period). The
        # error marks the backend as troubled, so cycles probe it before claiming more.
        Submission.objects.filter(pk=submission.pk, state=SubmissionState.SUBMITTING).update(
            error=f"{UNAVAILABLE}{exc}"[:2000]
        )
        raise
    except BackendError as exc:
        refused(submission, exc)
        raise
    checkpoint("submitted")
    record(submission, [*found, *new_ids], stage, [job["id"] for job in jobs])
    checkpoint("recorded")


def refused(submission: Submission, exc: Exception) -> None:
    """The backend refused: keep what it has anyway (a chunked array cut short), release the
    rest to be submitted again, or mark the whole submission failed."""
    try:
        found = backends.backend(submission.backend).find(submission.token)
    except BackendError:
        log.exception("submission %s: refused and its token cannot be resolved", submission.token)
        return  # stays `submitting`; recovery (and a human, if it persists) resolves it
    with transaction.atomic():
        jobs = element_ids(submission)
        keep = jobs[: len(found)]
        if not submission.job_ids:  # claimed by an earlier version: linked at once
            Job.objects.filter(pk__in=jobs[len(found) :], state=JobState.READY).update(
                submission=None, backend="", workdir=""
            )
        if keep:
            # The rest is released by leaving the claim.
            Submission.objects.filter(pk=submission.pk).update(
                size=len(keep), job_ids=keep if submission.job_ids else [], error=str(exc)[:2000]
            )
            submission.size = len(keep)
        else:
            Submission.objects.filter(pk=submission.pk, state=SubmissionState.SUBMITTING).update(
                state=SubmissionState.FAILED,
                job_ids=[],
                error=str(exc)[:2000],
                updated=timezone.now(),
            )
    if keep:
        record(submission, found, job_ids=keep)


# --- steps 2 and 4 ---------------------------------------------------------------------------


def _job_rows(submission: Submission) -> Rows:
    """The submission's jobs (:data:`PREPARE_FIELDS`) in element order."""
    ids = element_ids(submission)
    rows = {row["id"]: row for row in Job.objects.filter(pk__in=ids).values(*PREPARE_FIELDS)}
    return [rows[i] for i in ids if i in rows]


def _inputs(stage: Stage, jobs: Sequence[dict[str, Any]]) -> dict[int, list[str]]:
    """Absolute paths of every job's input files (one query). Invalidated files are left
    out: a job not yet submitted never reads them (``execution/lifecycle.py``)."""
    paths: dict[int, list[str]] = {}
    if stage.input_stage_id:
        needed = sorted(
            {
                i
                for job in jobs
                if job["input_first"] is not None
                for i in range(job["input_first"], job["input_first"] + job["input_count"])
            }
        )
        by_index: dict[int, list[str]] = defaultdict(list)
        for index, path in (
            OutputFile.objects.filter(
                job__stage_id=stage.input_stage_id,
                job__state=JobState.SUCCEEDED,
                job__index__in=needed,
                invalidated__isnull=True,
            )
            .order_by("job__index", "name")
            .values_list("job__index", "path")
        ):
            by_index[index].append(path)
        for job in jobs:
            first = job["input_first"]
            span = range(first, first + job["input_count"]) if first is not None else ()
            paths[job["id"]] = [p for i in span for p in by_index.get(i, [])]
    elif stage.input_dataset_id:
        names = sorted({n for job in jobs for n in job["input_files"]})
        where: dict[str, str] = {}
        invalid: set[str] = set()
        for name, path, invalidated in OutputFile.objects.filter(
            dataset_id=stage.input_dataset_id, name__in=names
        ).values_list("name", "path", "invalidated"):
            if invalidated is None:
                where[name] = path
            else:
                invalid.add(name)
        invalid -= set(where)  # a remade file of the same name is valid again
        for job in jobs:
            paths[job["id"]] = [where.get(n, n) for n in job["input_files"] if n not in invalid]
    return paths


def prepare(submission: Submission, stage: Stage, jobs: Rows | None = None) -> Rows:
    """Step 2: write the array's descriptions, ``array.json`` and ``jobs.jsonl``.

    Every element is written, also on a resubmission of an array cut short: the elements
    already running read the file too, and its content is the same (the rename swaps in an
    equal file). Returns the jobs in element order.
    """
    return prepare_with_paths(submission, stage, jobs)[0]


def prepare_with_paths(
    submission: Submission, stage: Stage, jobs: Rows | None = None
) -> tuple[Rows, list[str]]:
    """:func:`prepare`, also returning what the jobs read (:func:`read_paths`)."""
    jobs = _job_rows(submission) if jobs is None else jobs
    if len(jobs) != submission.size:
        raise BackendError(
            f"submission {submission.token}: {len(jobs)} jobs linked, {submission.size} recorded"
        )
    inputs = _inputs(stage, jobs)
    root = backends.array_dir(stage.campaign_id, stage.pk, submission.token)
    root.mkdir(parents=True, exist_ok=True)
    lines = [element_line(job, inputs.get(job["id"], [])) for job in jobs]
    write_atomic(root / JOBS_FILE, "".join(lines), JOB_READABLE)
    first = jobs[0]
    common = common_description(
        stage, first["memory_mb"], first["walltime_s"], first.get("parameters")
    )
    write_atomic(root / ARRAY_FILE, _dumps(common), JOB_READABLE)
    return jobs, read_paths(stage, inputs)


def read_paths(stage: Stage, inputs: dict[int, list[str]]) -> list[str]:
    """What an array's jobs read besides their array folder, for a sandboxing backend: the
    campaign's folder (the outputs of earlier stages), the registered code file, and the
    folders of inputs from elsewhere (a work folder of another campaign counts as that
    campaign's folder, so a dataset of 10,000 files is one path, not 10,000)."""
    root = backends.work_root()
    paths = {str(root / f"c{stage.campaign_id}")}
    if stage.code_location.startswith("/"):
        paths.add(stage.code_location)  # the file only, not what lies beside it
    for files in inputs.values():
        for name in files:
            path = Path(name)
            if not path.is_absolute():
                continue
            if path.is_relative_to(root) and len(path.relative_to(root).parts) > 1:
                paths.add(str(root / path.relative_to(root).parts[0]))
            else:
                paths.add(str(path.parent))
    return sorted(paths)


def _dumps(data: Any) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def array_spec(
    submission: Submission,
    stage: Stage,
    jobs: Sequence[dict[str, Any]],
    paths: Sequence[str] = (),
) -> ArraySpec:
    first = jobs[0]
    return ArraySpec(
        token=submission.token,
        array_dir=backends.array_dir(stage.campaign_id, stage.pk, submission.token),
        size=submission.size,
        argv=backends.job_argv(),
        cores=stage.cores,
        memory_mb=first["memory_mb"] or stage.memory_mb,
        walltime_s=first["walltime_s"] or stage.walltime_s,
        environment=backends.job_environment(),
        read_paths=tuple(paths),
        # Where the campaign's work runs and at what priority: the same answers the
        # controls give jobs already queued when either changes.
        **placement_options(placement_of(stage.campaign, backend=submission.backend)),
        priority=priority_level(stage.campaign.priority, stage.request.priority),
    )


def placement_options(placement: Placement) -> dict[str, Any]:
    return {
        "partition": placement.partition,
        "account": placement.account,
        "qos": placement.qos,
        "avoid_partitions": placement.avoid_partitions,
        "requirements": placement.requirements,
    }


def record(
    submission: Submission,
    batch_ids: Sequence[str],
    stage: Stage | None = None,
    job_ids: Sequence[int] | None = None,
) -> int:
    """Step 4: jobs linked with their batch ids, ``ready -> queued``, counters,
    ``submitted``; commit.

    Jobs cancelled while the submission was in flight (campaign cancelled) keep their
    state and are cancelled at the batch system once this commits. Returns jobs queued.
    ``job_ids`` are the submission's jobs in element order when the caller has them.
    """
    now = timezone.now()
    campaign_id = (
        stage.campaign_id
        if stage is not None
        else Stage.objects.values_list("campaign_id", flat=True).get(pk=submission.stage_id)
    )
    prefix = f"{backends.array_dir(campaign_id, submission.stage_id, submission.token)}/"
    with transaction.atomic():
        if job_ids is None:
            job_ids = element_ids(submission)
        if len(job_ids) != len(batch_ids):
            raise BackendError(
                f"submission {submission.token}: {len(batch_ids)} batch ids for {len(job_ids)} jobs"
            )
        won = Submission.objects.filter(pk=submission.pk, state=SubmissionState.SUBMITTING).update(
            state=SubmissionState.SUBMITTED,
            batch_id=_array_id(batch_ids),
            submitted_at=now,
            updated=now,
            job_ids=[],  # the links on the jobs say it from now on
        )
        if not won:
            log.warning("submission %s was recorded by someone else", submission.token)
            return 0
        write = _record_pg if connection.vendor == "postgresql" else _record_orm
        states = write(submission, job_ids, batch_ids, prefix, now)
        if len(states) != len(batch_ids):
            # A job another submission holds or that is gone: roll back, a human looks.
            raise BackendError(
                f"submission {submission.token}: {len(batch_ids)} batch ids, "
                f"{len(states)} of its jobs free to link"
            )
        to_cancel = [b for b, state in zip(batch_ids, states, strict=True) if state != "queued"]
        queued = len(states) - len(to_cancel)
        if queued:
            Stage.objects.filter(pk=submission.stage_id).update(
                n_ready=F("n_ready") - queued, n_queued=F("n_queued") + queued
            )
    submission.state = SubmissionState.SUBMITTED
    submission.job_ids = []
    if to_cancel:
        try:
            backends.backend(submission.backend).cancel(to_cancel)
        except BackendError:
            log.exception("cannot cancel %d jobs of a cancelled campaign", len(to_cancel))
    return queued


def _record_pg(
    submission: Submission,
    job_ids: Sequence[int],
    batch_ids: Sequence[str],
    prefix: str,
    now: datetime,
) -> list[str]:
    """One statement: element ``e`` (job ``job_ids[e]``) is linked to the submission with
    batch id ``e`` and its folder; the ready ones become queued. Returns each element's new
    state (``queued``, or what a concurrent cancel made it); a job another submission
    holds is left out (compare-and-set), and so the caller refuses. The row locks the
    UPDATE takes, and its re-check of a row another transaction changed meanwhile, make the
    ``CASE`` see the latest state.
    The batch ids are joined by position (``unnest``), not subscripted: a subscript walks a
    text array from its start, 10,000 times 5,000 steps."""
    with connection.cursor() as cursor:
        cursor.execute(
            # The compare-and-set is in the CASE, not in the WHERE: there, the OR made the
            # planner read the whole jobs table into a hash (0.5 s) instead of 10,000 index
            # lookups. A job another submission holds keeps its link and is reported, and the
            # caller rolls everything back.
            "UPDATE campaigns_job AS j SET submission_id = CASE WHEN j.submission_id IS NULL "
            "THEN %s ELSE j.submission_id END, backend = %s, "
            "batch_id = v.batch_id, workdir = %s::text || (v.n - 1), "
            "state = CASE WHEN j.state = %s THEN %s ELSE j.state END, "
            "state_since = CASE WHEN j.state = %s THEN %s ELSE j.state_since END, "
            "queued_at = CASE WHEN j.state = %s THEN %s ELSE j.queued_at END "
            "FROM unnest(%s::bigint[], %s::text[]) WITH ORDINALITY AS v(id, batch_id, n) "
            "WHERE j.id = v.id RETURNING v.n, j.state, j.submission_id",
            [
                submission.pk,
                submission.backend,
                prefix,
                JobState.READY,
                JobState.QUEUED,
                JobState.READY,
                now,
                JobState.READY,
                now,
                list(job_ids),
                list(batch_ids),
            ],
        )
        rows = sorted(cursor.fetchall())
        return [state for _n, state, linked in rows if linked == submission.pk]


def _record_orm(
    submission: Submission,
    job_ids: Sequence[int],
    batch_ids: Sequence[str],
    prefix: str,
    now: datetime,
) -> list[str]:
    """The same with the ORM (SQLite: the write transaction is the lock)."""
    current = {
        pk: (state, since, queued_at)
        for pk, state, since, queued_at in Job.objects.select_for_update()
        .filter(pk__in=job_ids)
        .filter(Q(submission__isnull=True) | Q(submission=submission))
        .values_list("id", "state", "state_since", "queued_at")
    }
    if len(current) != len(job_ids):
        return [current[pk][0] for pk in job_ids if pk in current]
    objs, states = [], []
    for element, (pk, batch_id) in enumerate(zip(job_ids, batch_ids, strict=True)):
        state, since, queued_at = current[pk]
        if state == JobState.READY:
            state, since, queued_at = JobState.QUEUED, now, now
        objs.append(
            Job(
                pk=pk,
                submission_id=submission.pk,
                backend=submission.backend,
                batch_id=batch_id,
                workdir=f"{prefix}{element}",
                state=state,
                state_since=since,
                queued_at=queued_at,
            )
        )
        states.append(state)
    Job.objects.bulk_update(
        objs, ["submission", "backend", "batch_id", "workdir", "state", "state_since", "queued_at"]
    )
    return states


def _array_id(batch_ids: Sequence[str]) -> str:
    """The array's id for display: Slurm ``123_4`` -> ``123``; local ids keep their token."""
    if not batch_ids:
        return ""
    first = batch_ids[0]
    if first.startswith("local:"):
        return first.rsplit(":", 1)[0]
    return first.split("_", 1)[0][:64]


def element_dir(job: Job) -> Path | None:
    return Path(job.workdir) if job.workdir else None


def grace_seconds() -> int:
    return int(getattr(settings, "OPOS_SUBMISSION_GRACE_S", 360))

"""Finalize: finished jobs get their final state, outputs into the catalogue, retries.

For each job the poller saw finish (``outcome`` set, state still in flight):

* **succeeded** (exit 0): its ``manifest.json`` is read and every listed file checked
  (inside the job folder, size and sha256 as declared); the files are copied to the
  experiment's storage and verified there by adler32 (``transfer``), then declared into
  the stage's output dataset with their replicas. A missing manifest, a checksum mismatch
  or a name the dataset already has is refused: the job fails with class ``output`` and
  that reason. A transfer that failed leaves the job in flight until a later cycle
  stores its outputs (or, attempts spent, fails it with class ``transfer``).
* **failed, lost, cancelled**: classified by ``failures``; a retry (new job,
  ``attempt + 1``, ``parent`` set) waits out its backoff as ``planned``.

File reads, checksums and transfers happen before any transaction; the writes for a chunk
of jobs are one transaction: job states, output files, dataset and stage counters, retries and the
release of the next stage's jobs, so a crash leaves either all of it or none. Then
requests move on through the intake service (``start`` once a job ran, ``complete`` once
every sample's last stage is done) and campaigns complete when all their work is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone

from common import limits
from requests_app.choices import DELIVERED_STATES, FINISHED_STATES, IN_CAMPAIGN_STATES, RequestState
from requests_app.services import TransitionError, system_transition

from ..batch import BatchState
from ..choices import (
    ACTIVE_JOB_STATES,
    OPEN_CAMPAIGN_STATES,
    OPEN_JOB_STATES,
    CampaignState,
    FailureClass,
    JobState,
    LaunchPhase,
)
from ..models import (
    COUNTER_FOR_STATE,
    RETRIED_COUNTER_FOR_STATE,
    Campaign,
    CampaignRequest,
    Dataset,
    Job,
    OutputFile,
    Replica,
    Stage,
    Transfer,
)
from ..services.campaigns import complete_campaign_if_done
from ..services.planning import release_dependents
from . import failures, logs, transfer
from .attempts import WORK_FIELDS, next_attempt
from .bulk import bulk_set
from .catalogue import FILE_NAME
from .wrapper import MANIFEST_FILE

log = logging.getLogger(__name__)

# A request done as far as its campaign is concerned: delivered, or cancelled.
REQUEST_DONE = DELIVERED_STATES | {RequestState.CANCELLED}

CHUNK = 200
FINAL_STATE = {
    BatchState.FAILED: JobState.FAILED,
    BatchState.LOST: JobState.LOST,
    BatchState.CANCELLED: JobState.CANCELLED,
}


@dataclass
class FinalizeReport:
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    files: int = 0
    released: int = 0
    transfers: transfer.TransferReport = field(default_factory=transfer.TransferReport)
    requests_started: list[int] = field(default_factory=list)
    requests_completed: list[int] = field(default_factory=list)
    campaigns_completed: list[int] = field(default_factory=list)


@dataclass
class Outcome:
    """What was found for one finished job, before anything is written."""

    job: dict[str, Any]
    state: str
    files: list[dict[str, Any]] = field(default_factory=list)
    failure_class: str = ""
    reason: str = ""
    verdict: failures.Verdict | None = None
    started: dt.datetime | None = None
    finished: dt.datetime | None = None
    host: str = ""
    # name -> (storage.Stored, storage area id or None for the default), set by transfer
    replicas: dict[str, Any] = field(default_factory=dict)


class Refused(Exception):
    """An output the catalogue will not take."""


# --- reading (no transaction) -----------------------------------------------------------------


def _checksums(path: Path) -> tuple[str, str]:
    """(sha256, adler32) in one read: the catalogue's checksum and storage's."""
    digest, adler = hashlib.sha256(), 1
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            adler = zlib.adler32(block, adler)
    return digest.hexdigest(), f"{adler:08x}"


def _when(value: Any) -> dt.datetime | None:
    if isinstance(value, int | float) and value > 0:
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    return None


def read_manifest(workdir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Check a succeeded job's manifest against the files; return (files, manifest)."""
    try:
        manifest = json.loads((workdir / MANIFEST_FILE).read_text())
        entries = manifest["files"]
        if not isinstance(entries, list):
            raise TypeError("files must be a list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise Refused(f"no readable manifest in {workdir}: {exc}") from exc
    verify = getattr(settings, "OPOS_VERIFY_OUTPUT_CHECKSUMS", True)
    root = workdir.resolve()
    files = []
    for entry in entries:
        try:
            name, rel = str(entry["name"]), str(entry["path"])
            size, checksum = int(entry["size"]), str(entry["sha256"]).lower()
            events = int(entry.get("events", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise Refused(f"malformed manifest entry {entry!r}") from exc
        # The catalogue's rule for names: they also name the file in storage.
        if not FILE_NAME.fullmatch(name) or events < 0:
            raise Refused(f"output name not acceptable: {name!r}")
        path = (workdir / rel).resolve()
        if not path.is_relative_to(root):  # a manifest may only declare the job's own files
            raise Refused(f"{name}: {rel} is outside the job folder")
        try:
            actual_size = path.stat().st_size
            if actual_size != size:
                raise Refused(f"{name}: size {actual_size} on disk, {size} in the manifest")
            actual, adler32 = _checksums(path)
            if verify and actual != checksum:
                raise Refused(f"{name}: checksum mismatch with the manifest")
        except OSError as exc:
            raise Refused(f"{name}: cannot read {rel}: {exc.strerror or exc}") from exc
        files.append(
            {
                "name": name,
                "path": str(path),
                "size": size,
                "checksum": checksum,
                "events": events,
                "adler32": adler32,
            }
        )
    return files, manifest


def _open(stage: dict[str, Any]) -> bool:
    """Whether a failed job of the stage may be retried: its campaign is open and its request
    still wants the work (not force-completed, cancelled or closed meanwhile). A test job is
    not retried: its failure is the test's answer (the operator recovers it, with overrides
    if need be)."""
    return (
        stage["campaign__state"] in OPEN_CAMPAIGN_STATES
        and stage.get("request__state") not in FINISHED_STATES
        and stage.get("campaign__test_phase") != LaunchPhase.TESTING
    )


def inspect(
    job: dict[str, Any], stage: dict[str, Any], rules: dict[int | None, list[failures.Rule]]
) -> Outcome:
    """Everything finalize needs to know about one finished job, from its folder."""
    workdir = Path(job["workdir"]) if job["workdir"] else None
    out = Outcome(job, JobState.SUCCEEDED)
    manifest: dict[str, Any] = {}
    if workdir is not None:
        try:
            manifest = json.loads((workdir / MANIFEST_FILE).read_text())
        except (OSError, ValueError):
            manifest = {}
    out.started = _when(manifest.get("started")) or job["started"]
    out.finished = _when(manifest.get("finished")) or job["finished"]
    host = manifest.get("host")
    out.host = (host if isinstance(host, str) else logs.job_host(job["workdir"]))[:255]
    if job["outcome"] == BatchState.SUCCEEDED:
        try:
            if workdir is None:
                raise Refused("the job has no folder")
            out.files, _ = read_manifest(workdir)
            return out
        except Refused as exc:
            out.state = JobState.FAILED
            out.failure_class = FailureClass.OUTPUT
            out.reason = f"outputs refused: {exc}"[:500]
            out.verdict = failures.Verdict(
                FailureClass.OUTPUT,
                out.reason,
                job["attempt"] < int(getattr(settings, "OPOS_MAX_ATTEMPTS", 3)) and _open(stage),
                delay_s=failures.backoff_s(job["attempt"]),
            )
            return out
    out.state = FINAL_STATE.get(job["outcome"], JobState.FAILED)
    out.verdict = failures.decide(
        outcome=job["outcome"],
        exit_code=job["exit_code"],
        tail=logs.stderr_tail(job["workdir"], batch_id=job["batch_id"]),
        batch_reason=job["failure_reason"] or "",
        attempt=job["attempt"],
        memory_mb=job["memory_mb"] or stage["memory_mb"],
        walltime_s=job["walltime_s"] or stage["walltime_s"],
        rules=failures.rules_for(stage["template_stage__template_id"], rules),
        may_retry=_open(stage),
    )
    out.failure_class = out.verdict.failure_class
    out.reason = out.verdict.reason
    return out


# --- the cycle ----------------------------------------------------------------------------------


OUTCOME_FIELDS = (
    "id",
    "stage_id",
    "index",
    "attempt",
    "state",
    "outcome",
    "exit_code",
    "failure_reason",
    "workdir",
    "batch_id",
    *WORK_FIELDS,
    "started",
    "finished",
)


def finalize_outcomes(now: dt.datetime | None = None, limit: int = 2000) -> FinalizeReport:
    """One cycle: finish up to ``limit`` jobs, then move requests and campaigns on."""
    now = now or timezone.now()
    report = FinalizeReport()
    pending = list(
        Job.objects.filter(state__in=sorted(ACTIVE_JOB_STATES))
        .exclude(outcome="")
        # Jobs waiting out a transfer's backoff are not read again until it is over.
        .exclude(transfer__next_try__gt=now)
        .order_by("id")
        .values(*OUTCOME_FIELDS)[:limit]
    )
    if pending:
        stages = stage_rows(pending)
        rules = failures.load_rules(s["template_stage__template_id"] for s in stages.values())
        outcomes = [inspect(job, stages[job["stage_id"]], rules) for job in pending]
        # Refuse clashing names before copying: a clash must not overwrite a stored file.
        _refuse_duplicates(outcomes, stages)
        outcomes = transfer.deliver(outcomes, stages, now, report.transfers)
        for start in range(0, len(outcomes), CHUNK):
            write(outcomes[start : start + CHUNK], stages, now, report)
    advance(report)
    return report


def stage_rows(pending: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """What finalize reads of the stages of ``pending`` jobs (one query)."""
    return {
        s["id"]: s
        for s in Stage.objects.filter(pk__in={j["stage_id"] for j in pending}).values(
            "id",
            "campaign_id",
            "campaign__state",
            "campaign__test_phase",
            "request__state",
            "output_dataset_id",
            "memory_mb",
            "walltime_s",
            "template_stage__template_id",
        )
    }


def write(
    outcomes: list[Outcome],
    stages: dict[int, dict[str, Any]],
    now: dt.datetime,
    report: FinalizeReport,
) -> None:
    """Write one chunk of outcomes in one transaction (see the module docstring)."""
    with transaction.atomic():
        # Jobs another finalizer holds or already did are skipped (skip_locked on
        # PostgreSQL; on SQLite the write lock taken at BEGIN serializes finalizers).
        mine = set(
            Job.objects.select_for_update(skip_locked=True)
            .filter(pk__in=[o.job["id"] for o in outcomes], state__in=sorted(ACTIVE_JOB_STATES))
            .exclude(outcome="")
            .values_list("id", flat=True)
        )
        outcomes = [o for o in outcomes if o.job["id"] in mine]
        if not outcomes:
            return
        _refuse_duplicates(outcomes, stages)
        files: list[OutputFile] = []
        stored: list[tuple[Any, Any]] = []
        jobs: list[Job] = []
        retries: list[Job] = []
        deltas: dict[int, Counter[str]] = defaultdict(Counter)
        retried: dict[int, Counter[str]] = defaultdict(Counter)
        events: Counter[int] = Counter()
        datasets: dict[int, Counter[str]] = defaultdict(Counter)
        succeeded: list[int] = []
        for o in outcomes:
            job, stage = o.job, stages[o.job["stage_id"]]
            walltime = None
            if o.started and o.finished and o.finished >= o.started:
                walltime = int((o.finished - o.started).total_seconds())
            jobs.append(
                Job(
                    pk=job["id"],
                    state=o.state,
                    state_since=now,
                    started=o.started,
                    finished=o.finished or now,
                    walltime_observed_s=walltime,
                    failure_class=o.failure_class,
                    failure_reason=o.reason if o.state != JobState.SUCCEEDED else "",
                    host=o.host,
                )
            )
            deltas[job["stage_id"]][job["state"]] -= 1
            deltas[job["stage_id"]][o.state] += 1
            if o.state == JobState.SUCCEEDED:
                succeeded.append(job["id"])
                events[job["stage_id"]] += job["events"]
                for f in o.files:
                    files.append(
                        OutputFile(
                            dataset_id=stage["output_dataset_id"],
                            job_id=job["id"],
                            **{k: f[k] for k in ("name", "path", "size", "checksum", "events")},
                        )
                    )
                    stored.append(o.replicas[f["name"]])
                    totals = datasets[stage["output_dataset_id"]]
                    totals["file_count"] += 1
                    totals["size_bytes"] += f["size"]
                    totals["events"] += f["events"]
            elif o.verdict is not None and o.verdict.retry:
                retries.append(
                    next_attempt(
                        job,
                        job["attempt"] + 1,
                        now,
                        state=JobState.PLANNED,  # after a backoff
                        not_before=now + dt.timedelta(seconds=o.verdict.delay_s),
                        memory_mb=o.verdict.memory_mb,
                        walltime_s=o.verdict.walltime_s,
                    )
                )
                deltas[job["stage_id"]][JobState.PLANNED] += 1
                retried[job["stage_id"]][o.state] += 1
        bulk_set(
            jobs,
            [
                "state",
                "state_since",
                "started",
                "finished",
                "walltime_observed_s",
                "failure_class",
                "failure_reason",
                "host",
            ],
        )
        Job.objects.bulk_create(retries, batch_size=CHUNK)
        OutputFile.objects.bulk_create(files, batch_size=CHUNK)
        Replica.objects.bulk_create(
            (
                Replica(
                    file_id=f.pk,
                    storage_id=area_id,
                    url=copy.url,
                    adler32=copy.adler32,
                    verified_at=now,
                    adopted=copy.adopted,
                )
                for f, (copy, area_id) in zip(files, stored, strict=True)
            ),
            batch_size=CHUNK,
        )
        Transfer.objects.filter(job_id__in=[o.job["id"] for o in outcomes]).delete()
        for dataset_id, totals in datasets.items():
            Dataset.objects.filter(pk=dataset_id).update(
                **{name: limits.saturating_add(name, n) for name, n in totals.items()}
            )
        for stage_id, delta in deltas.items():
            update: dict[str, Any] = {
                COUNTER_FOR_STATE[s]: F(COUNTER_FOR_STATE[s]) + n for s, n in delta.items() if n
            }
            for s, n in retried[stage_id].items():
                update[RETRIED_COUNTER_FOR_STATE[s]] = F(RETRIED_COUNTER_FOR_STATE[s]) + n
            update["progress_at"] = now
            if events[stage_id]:
                update["events_done"] = F("events_done") + events[stage_id]
            Stage.objects.filter(pk=stage_id).update(**update)
        if succeeded:
            report.released += sum(release_dependents(succeeded).values())
    report.succeeded += len(succeeded)
    report.failed += len(outcomes) - len(succeeded)
    report.retried += len(retries)
    report.files += len(files)


def _refuse_duplicates(outcomes: list[Outcome], stages: dict[int, dict[str, Any]]) -> None:
    """A name the dataset already has (or another job of this chunk declares) fails the job.

    An invalidated file's name is free again: its remake declares it."""
    wanted: dict[int, set[str]] = defaultdict(set)
    for o in outcomes:
        if o.state == JobState.SUCCEEDED:
            wanted[stages[o.job["stage_id"]]["output_dataset_id"]].update(
                f["name"] for f in o.files
            )
    taken: set[tuple[int, str]] = set()
    for dataset_id, names in wanted.items():
        taken.update(
            (dataset_id, name)
            for name in OutputFile.objects.filter(
                dataset_id=dataset_id, name__in=sorted(names), invalidated__isnull=True
            ).values_list("name", flat=True)
        )
    for o in outcomes:
        if o.state != JobState.SUCCEEDED:
            continue
        dataset_id = stages[o.job["stage_id"]]["output_dataset_id"]
        clash = [f["name"] for f in o.files if (dataset_id, f["name"]) in taken]
        if dataset_id is None and o.files:
            clash = ["(the stage has no output dataset)"]
        if clash:
            o.state = JobState.FAILED
            o.failure_class = FailureClass.OUTPUT
            o.reason = f"outputs refused: duplicate name {clash[0]} in the dataset"[:500]
            # Running it again would declare the same name again: never retried.
            o.verdict = failures.Verdict(FailureClass.OUTPUT, o.reason, False)
            o.files = []
        else:
            taken.update((dataset_id, f["name"]) for f in o.files)


# --- requests and campaigns ------------------------------------------------------------------


STARTED = Q(n_running__gt=0) | Q(n_held__gt=0) | Q(n_succeeded__gt=0) | Q(n_failed__gt=0)


def advance(report: FinalizeReport) -> None:
    """Move requests on (started, completed) and complete campaigns whose work is done."""
    for request_id in (
        Stage.objects.filter(request__state=RequestState.SCHEDULED)
        .filter(STARTED | Q(n_lost__gt=0))
        .values_list("request_id", flat=True)
        .distinct()
    ):
        if _transition(request_id, "start", "The first job is running."):
            report.requests_started.append(request_id)
    live = list(
        Stage.objects.filter(request__state__in=IN_CAMPAIGN_STATES).values(
            "id",
            "request_id",
            "campaign_id",
            "input_stage_id",
            "jobs_total",
            "n_succeeded",
            *(f"n_{s}" for s in sorted(OPEN_JOB_STATES)),
        )
    )
    feeding = {s["input_stage_id"] for s in live if s["input_stage_id"]}
    by_request: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for s in live:
        by_request[s["request_id"]].append(s)
    candidates: dict[int, list[int]] = {}
    for request_id, stages in by_request.items():
        last = [s for s in stages if s["id"] not in feeding]
        if all(s["n_succeeded"] >= s["jobs_total"] for s in last) and not any(
            s[f"n_{state}"] for s in stages for state in OPEN_JOB_STATES
        ):
            candidates[request_id] = [s["id"] for s in last]
    # A campaign whose last request completed in a cycle that stopped before completing the
    # campaign (a worker killed between the two commits) is no request's campaign any more:
    # found here by its requests, so it does not stay active for ever.
    campaigns = set(_stranded_campaigns())
    if not candidates:
        _complete_campaigns(campaigns, report)
        return
    # The counters count attempts; confirm with distinct job indexes (one query).
    done = dict(
        Job.objects.filter(
            stage_id__in=[sid for ids in candidates.values() for sid in ids],
            state=JobState.SUCCEEDED,
        )
        .values("stage_id")
        .annotate(n=Count("index", distinct=True))
        .values_list("stage_id", "n")
    )
    total = {s["id"]: s["jobs_total"] for s in live}
    for request_id, last_ids in candidates.items():
        if all(done.get(sid, 0) >= total[sid] for sid in last_ids) and _transition(
            request_id, "complete", "Every sample's last stage is done."
        ):
            report.requests_completed.append(request_id)
            campaigns.add(by_request[request_id][0]["campaign_id"])
    _complete_campaigns(campaigns, report)


def _complete_campaigns(campaign_ids: set[int], report: FinalizeReport) -> None:
    for campaign_id in sorted(campaign_ids):
        if _all_requests_done(campaign_id) and complete_campaign_if_done(campaign_id):
            report.campaigns_completed.append(campaign_id)


def _stranded_campaigns() -> list[int]:
    """Active campaigns with requests, every one of them done (one query)."""
    links = CampaignRequest.objects.filter(campaign=OuterRef("pk"))
    return list(
        Campaign.objects.filter(state=CampaignState.ACTIVE)
        .filter(Exists(links))
        .exclude(Exists(links.exclude(request__state__in=REQUEST_DONE)))
        .values_list("pk", flat=True)
    )


def _transition(request_id: int, action: str, note: str) -> bool:
    try:
        system_transition(request_id, action, note=note)
    except TransitionError as exc:
        # On hold or cancelled meanwhile: not ours to force; the next cycle looks again.
        log.info("request %s: %s refused: %s", request_id, action, exc)
        return False
    return True


def _all_requests_done(campaign_id: int) -> bool:
    """Every request of the campaign completed (closed or cancelled ones count as done)."""
    return not (
        CampaignRequest.objects.filter(campaign_id=campaign_id)
        .exclude(request__state__in=REQUEST_DONE)
        .exists()
    )

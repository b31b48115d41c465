"""Recovery: the periodic reconciler, and the operator's recovery launch.

``recover`` (beat) rebuilds in-flight state from the database and the batch systems:

* submissions left in ``submitting`` longer than ``OPOS_SUBMISSION_GRACE_S`` (the worker
  that made them is surely gone, the grace exceeds the submit task's hard time limit), and
  at once those whose claiming process is known to be gone (``abandoned``; the submit
  task also runs ``resolve_abandoned`` before each cycle), are resolved
  by asking the backend for their token: what exists is adopted, only what does not is
  submitted (``resolve_submission``);
* the stage counters of open campaigns are recounted from the jobs, so a drift (a crash
  between two services, a manual fix) heals.

Jobs the batch system no longer knows come back from the poller as ``lost``, and finalize
retries them; nothing else is needed for them here.

``recover_campaign`` is the operator's action on a campaign, one of its stages or a
selection of jobs: it resubmits exactly the jobs that failed for good (their latest attempt
failed or was lost, no retry pending) and the succeeded jobs whose output files are gone,
each as a new attempt linked to its parent, optionally with more memory or walltime or
other parameter values (checked against the template) for those attempts only. With
``invalid_only`` (a dataset's remake, ``execution/lifecycle.py``) it resubmits instead the
succeeded jobs whose outputs were invalidated. Stages whose output dataset is closed or
retired are left out: no file may be added to it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from ..batch import BackendError, BackendUnavailable
from ..choices import (
    OPEN_CAMPAIGN_STATES,
    OPEN_JOB_STATES,
    CampaignEventKind,
    JobState,
    SubmissionState,
)
from ..models import (
    RETRIED_COUNTER_FOR_STATE,
    Campaign,
    CampaignEvent,
    Dataset,
    DatasetState,
    Job,
    OutputFile,
    Replica,
    Stage,
    Submission,
)
from ..services.errors import CampaignError, require_operator
from ..services.overrides import Overrides, clean_overrides, parameters_for_stages
from ..services.planning import recount_stages
from . import backends, heartbeat
from .attempts import WORK_FIELDS, next_attempt
from .catalogue import take_out_of_counts
from .submission import element_ids, grace_seconds, record, submit_claimed

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

log = logging.getLogger(__name__)

ABANDONED_PER_CYCLE = 200
"""Young ``submitting`` submissions examined per cycle (bounded: a claim is a few rows)."""


@dataclass
class RecoverReport:
    adopted: list[str] = field(default_factory=list)
    resubmitted: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    recounted: int = 0


def recover(now: dt.datetime | None = None, grace_s: float | None = None) -> RecoverReport:
    """One reconciler cycle (see the module docstring)."""
    now = now or timezone.now()
    grace = grace_seconds() if grace_s is None else grace_s
    report = RecoverReport()
    stale = list(
        Submission.objects.filter(
            state=SubmissionState.SUBMITTING, updated__lte=now - dt.timedelta(seconds=grace)
        ).order_by("created")
    )
    _resolve([*stale, *abandoned(now, grace)], now, report)
    report.recounted = recount_open_stages()
    return report


def resolve_abandoned(now: dt.datetime | None = None) -> RecoverReport:
    """Only the submissions whose claimant is known to be gone (``abandoned``): cheap (one
    bounded query when there are none), so the submit cycle runs it before it plans, and
    the slots such a submission holds are free again within one cycle."""
    now = now or timezone.now()
    report = RecoverReport()
    _resolve(abandoned(now, grace_seconds()), now, report)
    return report


def _resolve(submissions: list[Submission], now: dt.datetime, report: RecoverReport) -> None:
    claimant = heartbeat.current_claimant()
    for submission in submissions:
        # A lease by compare-and-set on `updated`: two reconcilers never resolve the same
        # submission at once, and one that dies mid-way leaves it for the next after the
        # grace. The resolver becomes the claimant: another reconciler sees a live claimant
        # and leaves it alone, and if the resolver dies it is abandoned again.
        if not Submission.objects.filter(
            pk=submission.pk, state=SubmissionState.SUBMITTING, updated=submission.updated
        ).update(updated=now, **claimant):
            continue
        try:
            outcome = resolve_submission(submission)
        except BackendUnavailable as exc:
            log.warning("submission %s: backend unavailable, later: %s", submission.token, exc)
            report.unresolved.append(submission.token)
            continue
        except BackendError as exc:
            log.error("submission %s cannot be resolved: %s", submission.token, exc)
            Submission.objects.filter(pk=submission.pk).update(error=str(exc)[:2000])
            report.unresolved.append(submission.token)
            continue
        getattr(report, outcome).append(submission.token)


def abandoned(now: dt.datetime, grace: float) -> list[Submission]:
    """Submissions still within the grace period whose claiming process is known to be gone
    (``heartbeat.claimant_gone``): nothing will record them, so they are resolved now.

    Resolving is the same as after the grace (ask the backend for the token, adopt what
    exists, submit only what does not), so a job is still submitted once: the claimant is
    gone, nobody else calls the backend with that token.
    """
    young = list(
        Submission.objects.filter(
            state=SubmissionState.SUBMITTING,
            updated__gt=now - dt.timedelta(seconds=grace),
            claimed_pid__isnull=False,
        ).order_by("created")[:ABANDONED_PER_CYCLE]
    )
    if not young:
        return []
    rows = heartbeat.worker_rows(sorted({s.claimed_by for s in young if s.claimed_by}))
    found = []
    for submission in young:
        why = heartbeat.claimant_gone(submission, now, rows)
        if why:
            log.warning("submission %s abandoned, resolving now: %s", submission.token, why)
            found.append(submission)
    return found


def resolve_submission(submission: Submission) -> str:
    """Ask the backend for the token: adopt what exists, submit only what does not.

    Returns ``"adopted"`` (everything existed) or ``"resubmitted"``.
    """
    found = backends.backend(submission.backend).find(submission.token)
    if len(found) > submission.size:
        raise BackendError(
            f"token {submission.token}: {len(found)} jobs at the batch system, "
            f"{submission.size} recorded"
        )
    if len(found) == submission.size:
        record(submission, found)
        return "adopted"
    if (
        not found
        and not Job.objects.filter(pk__in=element_ids(submission), state=JobState.READY).exists()
    ):
        # Every job was cancelled before anything reached the batch system.
        Submission.objects.filter(pk=submission.pk, state=SubmissionState.SUBMITTING).update(
            state=SubmissionState.FAILED, error="nothing left to submit (jobs cancelled)"
        )
        return "adopted"
    submit_claimed(submission, found=found)
    return "resubmitted"


def recount_open_stages() -> int:
    """Rebuild the counters of the open campaigns' stages from the jobs.

    The stage rows are locked before counting: a concurrent poll or finalize then either
    committed before the count (and is counted) or applies its delta after this commits.
    """
    ids = list(
        Stage.objects.filter(campaign__state__in=sorted(OPEN_CAMPAIGN_STATES)).values_list(
            "id", flat=True
        )
    )
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        with transaction.atomic():
            list(Stage.objects.select_for_update().filter(pk__in=chunk).values_list("id"))
            recount_stages(chunk)
    return len(ids)


# --- the operator's recovery launch -------------------------------------------------------------


@dataclass
class RecoveryResult:
    """What a recovery launch resubmitted."""

    campaign: Campaign
    failed: int = 0
    missing_outputs: int = 0
    jobs: list[int] = field(default_factory=list)
    invalid_outputs: int = 0
    closed: list[str] = field(default_factory=list)
    """Output datasets left out because they are closed or retired."""
    overrides: dict[str, Any] = field(default_factory=dict)  # as recorded: values coerced


def recover_campaign(
    campaign: Campaign | int,
    user: AbstractBaseUser,
    stage: Stage | int | None = None,
    note: str = "",
    *,
    invalid_only: bool = False,
    jobs: Sequence[int] | None = None,
    overrides: Overrides | Mapping[str, Any] | None = None,
) -> RecoveryResult:
    """Resubmit exactly the failed jobs and those whose outputs are missing (operators).

    For each job index of the campaign (or of ``stage``) with no attempt succeeded or
    still open, whose latest attempt failed or was lost: a new attempt, ready now. For
    each succeeded index whose declared files are no longer on disk: the files leave the
    catalogue and a new attempt runs. With ``invalid_only``, only the latest succeeded
    attempts with an invalidated output are redone (see the module docstring). Recorded
    as a campaign event.

    ``jobs`` narrows the recovery to a selection (job ids, each the latest attempt of its
    index, failed, lost or cancelled, nothing pending). ``overrides`` (memory, walltime,
    parameter values; ``campaigns.services.overrides``) go on the new attempts, checked
    against the template first, and into the event.
    """
    require_operator(user, "launch recoveries")
    if not isinstance(overrides, Overrides):
        overrides = clean_overrides(overrides)
    campaign_id = campaign if isinstance(campaign, int) else campaign.pk
    stage_id = stage if isinstance(stage, int) or stage is None else stage.pk
    with transaction.atomic():
        current = Campaign.objects.select_for_update().get(pk=campaign_id)
        if current.state not in OPEN_CAMPAIGN_STATES:
            raise CampaignError(
                f"Cannot recover: the campaign is {current.state}.",
                ["recover needs the state: active, paused or planned"],
                kind="conflict",
            )
        stages = Stage.objects.filter(campaign=current)
        if stage_id is not None:
            stages = stages.filter(pk=stage_id)
            if not stages.exists():
                raise CampaignError(
                    "The stage is not part of this campaign.", [f"stage: {stage_id}"]
                )
        stage_rows = {
            s["id"]: s
            for s in stages.values(
                "id",
                "name",
                "output_dataset_id",
                "output_dataset__state",
                "parameters",
                "template_stage_id",
            )
        }
        closed = _closed_datasets(stage_rows, stage_id)
        ids = [sid for sid, s in stage_rows.items() if s["output_dataset__state"] not in CLOSED]
        tainted = _with_invalid_outputs(ids)
        invalid: list[dict[str, Any]] = []
        missing: list[dict[str, Any]] = []
        if invalid_only:
            failed = []
            invalid = _invalid_outputs(ids, tainted)
        elif jobs is not None:
            failed = _selected(ids, list(jobs))
        else:
            failed = _failed_for_good(ids)
            missing = _missing_outputs(ids, skip=tainted)
        chosen = [*failed, *missing, *invalid]
        per_stage_params = parameters_for_stages(
            overrides, [stage_rows[sid] for sid in sorted({j["stage_id"] for j in chosen})]
        )
        now = timezone.now()
        top = _latest_attempts(ids, chosen)
        retries = [
            next_attempt(
                job,
                top[(job["stage_id"], job["index"])] + 1,
                now,
                memory_mb=overrides.memory_mb,
                walltime_s=overrides.walltime_s,
                parameters=per_stage_params.get(job["stage_id"], {}),
            )
            for job in chosen
        ]
        Job.objects.bulk_create(retries)
        per_stage = Counter(job.stage_id for job in retries)
        replaced: dict[int, Counter[str]] = defaultdict(Counter)
        for job in chosen:
            replaced[job["stage_id"]][job["state"]] += 1
        for sid, n in per_stage.items():
            Stage.objects.filter(pk=sid).update(
                n_ready=F("n_ready") + n,
                **{
                    RETRIED_COUNTER_FOR_STATE[state]: F(RETRIED_COUNTER_FOR_STATE[state]) + k
                    for state, k in replaced[sid].items()
                },
            )
        changes: dict[str, Any] = {
            "stage": [None, stage_id],
            "failed": [None, len(failed)],
            "missing_outputs": [None, len(missing)],
            "invalid_outputs": [None, len(invalid)],
            "closed_datasets": [None, closed],
        }
        if jobs is not None:
            changes["jobs"] = [None, sorted(j["id"] for j in failed)[:MAX_RECORDED_JOBS]]
        recorded = overrides.record()
        if "parameters" in recorded:  # the values as checked (coerced to their types)
            recorded["parameters"] = {k: v for p in per_stage_params.values() for k, v in p.items()}
        if recorded:
            changes["overrides"] = [None, recorded]
        CampaignEvent.objects.create(
            campaign=current,
            kind=CampaignEventKind.RECOVERED,
            actor=user,
            reason=note.strip(),
            changes=changes,
        )
    return RecoveryResult(
        current,
        len(failed),
        len(missing),
        [j.pk for j in retries],
        len(invalid),
        closed,
        recorded,
    )


CLOSED = frozenset({DatasetState.CLOSED, DatasetState.RETIRED})


def _closed_datasets(stage_rows: dict[int, dict[str, Any]], stage_id: int | None) -> list[str]:
    """Names of the closed or retired output datasets; refused when the one stage asked
    for writes into one (a campaign's recovery leaves such stages out)."""
    ids = [
        s["output_dataset_id"] for s in stage_rows.values() if s["output_dataset__state"] in CLOSED
    ]
    names = sorted(Dataset.objects.filter(pk__in=ids).values_list("name", flat=True))
    if names and stage_id is not None:
        raise CampaignError(
            f"Cannot recover: the stage's output dataset {names[0]} takes no more files.",
            ["reopen the dataset first (it is closed or retired)"],
            kind="conflict",
        )
    return names


def _with_invalid_outputs(stage_ids: list[int]) -> set[int]:
    """Succeeded jobs with an invalidated output: theirs is a remake, not a missing file."""
    return set(
        OutputFile.objects.filter(
            job__stage_id__in=stage_ids,
            job__state=JobState.SUCCEEDED,
            invalidated__isnull=False,
        ).values_list("job_id", flat=True)
    )


def _invalid_outputs(stage_ids: list[int], tainted: set[int]) -> list[dict[str, Any]]:
    """The latest succeeded attempts with an invalidated output and nothing pending.

    Their events already left the stage's progress when the file was invalidated; their
    other files are invalidated now, as the new attempt declares every name again.
    """
    if not tainted:
        return []
    jobs = _jobs(stage_ids, [JobState.SUCCEEDED], ids=sorted(tainted))
    top = _latest_attempts(stage_ids, jobs)
    busy = _busy(stage_ids)
    chosen = [
        j
        for j in jobs
        if (j["stage_id"], j["index"]) not in busy
        and top[(j["stage_id"], j["index"])] == j["attempt"]
    ]
    rest = list(
        OutputFile.objects.filter(
            job_id__in=[j["id"] for j in chosen], invalidated__isnull=True
        ).values("id", "dataset_id", "size", "events")
    )
    if rest:
        OutputFile.objects.filter(pk__in=[f["id"] for f in rest]).update(
            invalidated=timezone.now(), invalid_reason="replaced by a remake of its job"
        )
        take_out_of_counts(rest)
    return chosen


def _busy(stage_ids: list[int]) -> set[tuple[int, int]]:
    return set(
        Job.objects.filter(stage_id__in=stage_ids, state__in=sorted(OPEN_JOB_STATES)).values_list(
            "stage_id", "index"
        )
    )


MAX_RECORDED_JOBS = 1000
"""Job ids a recovery event lists at most (the new attempts name their parents anyway)."""
RECOVERABLE = (JobState.FAILED, JobState.LOST, JobState.CANCELLED)


def _selected(stage_ids: list[int], job_ids: list[int]) -> list[dict[str, Any]]:
    """The chosen jobs, each checked: of the campaign (or stage), the latest attempt of its
    index, failed, lost or cancelled. Refused as a whole, naming each job at fault."""
    wanted = sorted({int(pk) for pk in job_ids})
    if not wanted:
        raise CampaignError("Choose at least one job to recover.", ["jobs: empty"])
    rows = {j["id"]: j for j in _jobs(stage_ids, list(JobState.values), ids=wanted)}
    top = _latest_attempts(stage_ids, list(rows.values()))
    problems = []
    for pk in wanted:
        job = rows.get(pk)
        if job is None:
            problems.append(f"job {pk}: not a job of this campaign (or stage)")
        elif top[(job["stage_id"], job["index"])] != job["attempt"]:
            problems.append(
                f"job {pk}: attempt {job['attempt']} of index {job['index']} was already "
                "tried again; choose the latest attempt"
            )
        elif job["state"] not in RECOVERABLE:
            problems.append(
                f"job {pk}: it is {job['state']}; only failed, lost or cancelled jobs recover"
            )
    if problems:
        raise CampaignError("These jobs cannot be recovered.", problems, kind="conflict")
    return [rows[pk] for pk in wanted]


def _failed_for_good(stage_ids: list[int]) -> list[dict[str, Any]]:
    """Failed or lost jobs that are the latest attempt of their index (nothing pending)."""
    candidates = _jobs(stage_ids, [JobState.FAILED, JobState.LOST])
    top = _latest_attempts(stage_ids, candidates)
    return [j for j in candidates if top[(j["stage_id"], j["index"])] == j["attempt"]]


def _latest_attempts(
    stage_ids: list[int], jobs: list[dict[str, Any]]
) -> dict[tuple[int, int], int]:
    """Highest attempt number of each (stage, index) of ``jobs`` (one query)."""
    indexes = sorted({j["index"] for j in jobs})
    if not indexes:
        return {}
    return {
        (row["stage_id"], row["index"]): row["top"]
        for row in Job.objects.filter(stage_id__in=stage_ids, index__in=indexes)
        .values("stage_id", "index")
        .annotate(top=Max("attempt"))
        .order_by()
    }


def _missing_outputs(stage_ids: list[int], skip: set[int]) -> list[dict[str, Any]]:
    """Succeeded jobs with a declared file gone; their files leave the catalogue.

    Jobs in ``skip`` (with an invalidated output) are a dataset's remake to launch."""
    gone: dict[int, list[dict[str, Any]]] = defaultdict(list)
    rows = list(
        OutputFile.objects.filter(
            job__stage_id__in=stage_ids, job__state=JobState.SUCCEEDED, invalidated__isnull=True
        ).values("id", "job_id", "path", "size", "events", "dataset_id")
    )
    missing = [
        r for r in rows if r["job_id"] not in skip and r["path"] and not Path(r["path"]).exists()
    ]
    # The job's folder may be emptied by retention: a file is gone only when its replicas
    # are too. Local replicas are looked at; XRootD ones are trusted (durable storage, and
    # asking the server per file would make recovery as slow as the production is big).
    replicas: dict[int, list[str]] = defaultdict(list)
    for file_id, url in Replica.objects.filter(file_id__in=[r["id"] for r in missing]).values_list(
        "file_id", "url"
    ):
        replicas[file_id].append(url)
    for row in missing:
        urls = replicas.get(row["id"], [])
        if not any(_replica_present(url) for url in urls):
            gone[row["job_id"]].append(row)
    if not gone:
        return []
    jobs = _jobs(stage_ids, [JobState.SUCCEEDED], ids=list(gone))
    # Only the latest attempt of an index is redone, and only if none is pending already.
    busy = _busy(stage_ids)
    chosen = [j for j in jobs if (j["stage_id"], j["index"]) not in busy]
    files = [f for j in chosen for f in gone[j["id"]]]
    OutputFile.objects.filter(pk__in=[f["id"] for f in files]).delete()
    totals: dict[int, Counter[str]] = defaultdict(Counter)
    for f in files:
        totals[f["dataset_id"]]["file_count"] += 1
        totals[f["dataset_id"]]["size_bytes"] += f["size"]
        totals[f["dataset_id"]]["events"] += f["events"]
    for dataset_id, t in totals.items():
        Dataset.objects.filter(pk=dataset_id).update(**{name: F(name) - n for name, n in t.items()})
    lost_events: Counter[int] = Counter()
    for j in chosen:
        lost_events[j["stage_id"]] += j["events"]
    for sid, n in lost_events.items():
        Stage.objects.filter(pk=sid).update(events_done=F("events_done") - n)
    return chosen


def _replica_present(url: str) -> bool:
    if url.startswith("file://"):
        return Path(unquote(url[len("file://") :])).exists()
    return True


def _jobs(stage_ids: list[int], states: list[str], ids: list[int] | None = None) -> list[dict]:
    query = Job.objects.filter(stage_id__in=stage_ids, state__in=states)
    if ids is not None:
        query = query.filter(pk__in=ids)
    return list(
        query.order_by("stage_id", "index", "attempt").values(
            "id",
            "stage_id",
            "index",
            "attempt",
            "state",
            *WORK_FIELDS,
        )
    )

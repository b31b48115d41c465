"""Stuck work: flagged with the reason for operators, and cancel-and-retry as the remedy.

``detect_stuck`` (beat) raises a ``StuckFlag`` for

* a job queued longer than ``OPOS_STUCK_QUEUED_S`` or held longer than ``OPOS_STUCK_HELD_S``;
* a job running longer than ``OPOS_STUCK_RUNNING_FACTOR`` x its walltime estimate;
* a stage with jobs in flight and none finished for ``OPOS_STUCK_STAGE_S``;
* a submission still unresolved twice the submission grace after it was made;

and resolves the open flags whose condition has ended. Flags are data, not actions: what
to do stays the operator's call (``cancel_and_retry``, or a hold on the request).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Min, Q
from django.utils import timezone

from opos import pagecache

from ..batch import BackendError
from ..choices import (
    ACTIVE_JOB_STATES,
    OPEN_CAMPAIGN_STATES,
    FailureClass,
    JobState,
    SubmissionState,
)
from ..models import COUNTER_FOR_STATE, Job, Stage, StuckFlag, StuckKind, Submission
from ..services.errors import CampaignError, require_operator
from . import backends
from .submission import grace_seconds

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

log = logging.getLogger(__name__)


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


@dataclass
class StuckReport:
    raised: int = 0
    resolved: int = 0
    open: int = 0


def _age(since: dt.datetime | None, now: dt.datetime) -> str:
    if since is None:
        return "an unknown time"
    seconds = int((now - since).total_seconds())
    if seconds >= 7200:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def find_stuck(now: dt.datetime) -> dict[tuple[int, int | None, str], tuple[int, str]]:
    """Current stuck conditions: ``{(stage, job or None, kind): (campaign, reason)}``."""
    found: dict[tuple[int, int | None, str], tuple[int, str]] = {}
    queued_s = _setting("OPOS_STUCK_QUEUED_S", 86400)
    held_s = _setting("OPOS_STUCK_HELD_S", 3600)
    factor = _setting("OPOS_STUCK_RUNNING_FACTOR", 3)
    stage_s = _setting("OPOS_STUCK_STAGE_S", 6 * 3600)
    jobs = Job.objects.filter(outcome="").filter(
        Q(state=JobState.QUEUED, state_since__lte=now - dt.timedelta(seconds=queued_s))
        | Q(state=JobState.HELD, state_since__lte=now - dt.timedelta(seconds=held_s))
        | Q(state=JobState.RUNNING, started__isnull=False)
    )
    for job in jobs.values(
        "id",
        "stage_id",
        "state",
        "state_since",
        "started",
        "walltime_s",
        "batch_id",
        "stage__campaign_id",
        "stage__walltime_s",
        "stage__walltime_median_s",
    ):
        key_campaign = job["stage__campaign_id"]
        if job["state"] == JobState.QUEUED:
            reason = f"queued for {_age(job['state_since'], now)} (batch id {job['batch_id']})"
            found[(job["stage_id"], job["id"], StuckKind.QUEUED)] = (key_campaign, reason)
        elif job["state"] == JobState.HELD:
            reason = f"held for {_age(job['state_since'], now)} (batch id {job['batch_id']})"
            found[(job["stage_id"], job["id"], StuckKind.HELD)] = (key_campaign, reason)
        else:
            estimate = (
                job["walltime_s"] or job["stage__walltime_median_s"] or job["stage__walltime_s"]
            )
            if (now - job["started"]).total_seconds() > factor * estimate:
                reason = (
                    f"running for {_age(job['started'], now)}, over {factor} x its "
                    f"walltime estimate of {estimate} s"
                )
                found[(job["stage_id"], job["id"], StuckKind.RUNNING)] = (key_campaign, reason)
    quiet_since = now - dt.timedelta(seconds=stage_s)
    # A stage that never finished a job counts from its first submission, not from when it
    # was planned (a campaign may be launched weeks after scheduling).
    for stage in (
        Stage.objects.filter(campaign__state__in=sorted(OPEN_CAMPAIGN_STATES))
        .filter(Q(n_queued__gt=0) | Q(n_running__gt=0) | Q(n_held__gt=0))
        .annotate(first_submitted=Min("submissions__submitted_at"))
        .filter(
            Q(progress_at__lte=quiet_since)
            | Q(progress_at__isnull=True, first_submitted__lte=quiet_since)
        )
        .values("id", "campaign_id", "progress_at", "name")
    ):
        last = stage["progress_at"]
        reason = (
            f"no job of {stage['name']} finished for {_age(last, now)}"
            if last
            else f"no job of {stage['name']} has finished yet"
        )
        found[(stage["id"], None, StuckKind.NO_PROGRESS)] = (stage["campaign_id"], reason)
    unresolved = now - dt.timedelta(seconds=2 * grace_seconds())
    for sub in Submission.objects.filter(
        state=SubmissionState.SUBMITTING, created__lte=unresolved
    ).values("stage_id", "stage__campaign_id", "token", "error"):
        reason = f"submission {sub['token']} still unresolved: {sub['error'] or 'no answer'}"
        found[(sub["stage_id"], None, StuckKind.SUBMISSION)] = (
            sub["stage__campaign_id"],
            reason[:500],
        )
    return found


def detect_stuck(now: dt.datetime | None = None) -> StuckReport:
    """Raise flags for new stuck conditions; resolve those that ended."""
    now = now or timezone.now()
    found = find_stuck(now)
    report = StuckReport()
    with transaction.atomic():
        open_flags = {
            (f["stage_id"], f["job_id"], f["kind"]): f["id"]
            for f in StuckFlag.objects.open().values("id", "stage_id", "job_id", "kind")
        }
        ended = [pk for key, pk in open_flags.items() if key not in found]
        if ended:
            report.resolved = StuckFlag.objects.filter(pk__in=ended).update(resolved_at=now)
        new = [
            StuckFlag(
                campaign_id=campaign_id, stage_id=stage_id, job_id=job_id, kind=kind, reason=reason
            )
            for (stage_id, job_id, kind), (campaign_id, reason) in found.items()
            if (stage_id, job_id, kind) not in open_flags
        ]
        # ignore_conflicts: a concurrent detector raising the same flag is no error.
        StuckFlag.objects.bulk_create(new, ignore_conflicts=True)
        if ended or new:
            pagecache.bump_data_version()  # after commit: the pages show the flags
    report.raised = len(new)
    report.open = len(found)
    return report


# --- cancel and retry -----------------------------------------------------------------------------


@dataclass
class CancelRetryResult:
    cancelled: list[int] = field(default_factory=list)
    retries: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)


def cancel_and_retry(
    user: AbstractBaseUser,
    job_ids: list[int] | None = None,
    stage: Stage | int | None = None,
    note: str = "",
) -> CancelRetryResult:
    """Cancel jobs in flight at the batch system and queue a new attempt of each (operators).

    ``job_ids`` names the jobs; ``stage`` takes every job of the stage in flight. A job
    that finished meanwhile is skipped (finalize has the last word on it). The batch system
    cancels first: if it cannot be reached nothing changes, and the error says so.
    """
    require_operator(user, "cancel and retry jobs")
    query = Job.objects.filter(state__in=sorted(ACTIVE_JOB_STATES), outcome="")
    if stage is not None:
        query = query.filter(stage_id=stage if isinstance(stage, int) else stage.pk)
    elif job_ids:
        query = query.filter(pk__in=job_ids)
    else:
        raise CampaignError("Nothing to cancel.", ["jobs: give job ids or a stage"])
    targets = list(query.values("id", "backend", "batch_id"))
    result = CancelRetryResult(
        skipped=[j for j in (job_ids or []) if j not in {t["id"] for t in targets}]
    )
    by_backend: dict[str, list[str]] = defaultdict(list)
    for t in targets:
        if t["batch_id"]:
            by_backend[t["backend"]].append(t["batch_id"])
    try:
        for name, ids in by_backend.items():
            backends.backend(name).cancel(ids)
    except BackendError as exc:
        raise CampaignError(
            "The batch system did not take the cancel; nothing was changed.",
            [f"backend: {exc}"],
            kind="conflict",
        ) from exc
    now = timezone.now()
    who = getattr(user, "username", "an operator")
    reason = f"cancelled by {who} to retry" + (f": {note.strip()}" if note.strip() else "")
    with transaction.atomic():
        jobs = list(
            # of=self: lock the jobs only, not the joined stage and campaign rows.
            Job.objects.select_for_update(of=("self",))
            .filter(
                pk__in=[t["id"] for t in targets], state__in=sorted(ACTIVE_JOB_STATES), outcome=""
            )
            .select_related("stage__campaign")
            .order_by("id")
        )
        deltas: dict[int, Counter[str]] = defaultdict(Counter)
        replaced: Counter[int] = Counter()  # cancelled attempts replaced by a retry
        retries = []
        top = {
            (row["stage_id"], row["index"]): row["top"]
            for row in Job.objects.filter(
                stage_id__in={j.stage_id for j in jobs}, index__in={j.index for j in jobs}
            )
            .values("stage_id", "index")
            .annotate(top=Max("attempt"))
            .order_by()
        }
        for job in jobs:
            deltas[job.stage_id][job.state] -= 1
            deltas[job.stage_id][JobState.CANCELLED] += 1
            job.state = JobState.CANCELLED
            job.outcome = JobState.CANCELLED
            job.state_since = job.finished = now
            job.failure_class = FailureClass.CANCELLED
            job.failure_reason = reason[:500]
            if job.stage.campaign.state in OPEN_CAMPAIGN_STATES:
                retries.append(_retry_of(job, top[(job.stage_id, job.index)] + 1, now))
                deltas[job.stage_id][JobState.READY] += 1
                replaced[job.stage_id] += 1
        Job.objects.bulk_update(
            jobs,
            ["state", "outcome", "state_since", "finished", "failure_class", "failure_reason"],
        )
        Job.objects.bulk_create(retries)
        for stage_id, delta in deltas.items():
            update = {
                COUNTER_FOR_STATE[s]: F(COUNTER_FOR_STATE[s]) + n for s, n in delta.items() if n
            }
            if replaced[stage_id]:
                update["retried_cancelled"] = F("retried_cancelled") + replaced[stage_id]
            Stage.objects.filter(pk=stage_id).update(**update)
        StuckFlag.objects.open().filter(job__in=jobs).update(resolved_at=now)
        pagecache.bump_data_version()  # after commit
    result.cancelled = [j.pk for j in jobs]
    result.retries = [j.pk for j in retries]
    return result


def _retry_of(job: Job, attempt: int, now: dt.datetime) -> Job:
    return Job(
        stage_id=job.stage_id,
        index=job.index,
        attempt=attempt,
        parent=job,
        state=JobState.READY,
        state_since=now,
        events_first=job.events_first,
        events=job.events,
        input_first=job.input_first,
        input_count=job.input_count,
        input_files=job.input_files,
        memory_mb=job.memory_mb,
        walltime_s=job.walltime_s,
    )

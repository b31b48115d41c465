"""Stuck work: flagged with the reason for operators, and cancel-and-retry as the remedy.

``detect_stuck`` (beat) raises a ``StuckFlag`` for

* a job queued longer than ``OPOS_STUCK_QUEUED_S`` or held longer than ``OPOS_STUCK_HELD_S``;
* a job running longer than ``OPOS_STUCK_RUNNING_FACTOR`` x its walltime estimate;
* a stage with jobs in flight and none finished for ``OPOS_STUCK_STAGE_S``, or sooner
  for a stage whose jobs are short: ``OPOS_STALL_FACTOR`` x its observed median walltime
  (at least ``OPOS_STALL_MIN_S``): stalls are judged by progress, not only by the clock;
* a stage whose remaining jobs all gave up (failed for good, nothing left open): its work
  is blocked until an operator recovers it;
* a submission still unresolved twice the submission grace after it was made;

and resolves the open flags whose condition has ended. Flags are data, not actions: what
to do stays the operator's call (``cancel_and_retry``, a recovery, or a hold on the
request). A stage that just stalled or gave up is announced once, when its flag is
raised: operators by email, each request's people by a note of the tracker (email, and a
work note on the ticket).
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

from ..batch import BackendError
from ..choices import (
    ACTIVE_JOB_STATES,
    OPEN_CAMPAIGN_STATES,
    OPEN_JOB_STATES,
    FailureClass,
    JobState,
    SubmissionState,
)
from ..models import COUNTER_FOR_STATE, Job, Stage, StuckFlag, StuckKind, Submission
from ..services.blockage import gave_up_reason
from ..services.errors import CampaignError, require_operator
from . import backends
from .announcements import announce
from .attempts import next_attempt
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


def _age_s(seconds: int) -> str:
    return _age(
        dt.datetime.min.replace(tzinfo=dt.UTC),
        dt.datetime.min.replace(tzinfo=dt.UTC) + dt.timedelta(seconds=seconds),
    )


def stall_limit_s(median_s: int | None, stage_s: int, factor: int, floor_s: int) -> int:
    """How long a stage with work in flight may go without a job finishing.

    ``factor`` x the observed median walltime (never below ``floor_s``), capped by the
    time-based limit: a stage of 5-minute jobs that finished nothing for an hour has
    stalled, though 6 h have not passed. Without a median (nothing finished yet), the
    time-based limit alone.
    """
    if not median_s:
        return stage_s
    return min(stage_s, max(factor * median_s, floor_s))


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
    stall_factor = _setting("OPOS_STALL_FACTOR", 5)
    stall_min_s = _setting("OPOS_STALL_MIN_S", 900)
    # The shortest quiet time any stage may have; each stage's own limit is checked below.
    quiet_since = now - dt.timedelta(seconds=min(stage_s, stall_min_s))
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
        .values("id", "campaign_id", "progress_at", "first_submitted", "name", "walltime_median_s")
    ):
        last = stage["progress_at"]
        limit = stall_limit_s(stage["walltime_median_s"], stage_s, stall_factor, stall_min_s)
        if (now - (last or stage["first_submitted"])).total_seconds() < limit:
            continue
        reason = (
            f"no job of {stage['name']} finished for {_age(last, now)}"
            if last
            else f"no job of {stage['name']} has finished yet"
        )
        if stage["walltime_median_s"] and limit < stage_s:
            reason += f" (its jobs take {_age_s(stage['walltime_median_s'])} at the median)"
        found[(stage["id"], None, StuckKind.NO_PROGRESS)] = (stage["campaign_id"], reason)
    # Remaining work that all gave up: nothing open, not every job succeeded.
    nothing_open = Q(**{f"{COUNTER_FOR_STATE[s]}__lte": 0 for s in OPEN_JOB_STATES})
    for stage in (
        Stage.objects.filter(campaign__state__in=sorted(OPEN_CAMPAIGN_STATES))
        .annotate(succeeded=F("n_succeeded") - F("retried_succeeded"))
        .filter(nothing_open, jobs_total__gt=F("succeeded"))
        .values("id", "campaign_id", "name", "jobs_total", "succeeded")
    ):
        reason = gave_up_reason([(stage["name"], stage["jobs_total"] - stage["succeeded"])])
        found[(stage["id"], None, StuckKind.GAVE_UP)] = (stage["campaign_id"], reason)
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
        news = [f for f in new if f.kind in ANNOUNCED and f.job_id is None]
        if news:
            transaction.on_commit(lambda: announce_flags(news))
    report.raised = len(new)
    report.open = len(found)
    return report


# Stage flags that mean the work stopped; the others (a job queued long, a submission
# unresolved) are for operators' triage pages only.
ANNOUNCED = {StuckKind.GAVE_UP: "blocked", StuckKind.NO_PROGRESS: "stalled"}


def announce_flags(flags: list[StuckFlag]) -> None:
    """One note per request whose stages just stalled or gave up, one email to operators.

    Runs after the flags commit. A concurrent detector that raised the same flag first
    (``ignore_conflicts``) announces it too at worst once more: never every cycle.
    """
    stages = {
        row["id"]: row
        for row in Stage.objects.filter(pk__in=[f.stage_id for f in flags]).values(
            "id", "request_id", "request__number", "campaign__name"
        )
    }
    notes: dict[int, list[str]] = defaultdict(list)
    for flag in flags:
        stage = stages.get(flag.stage_id)
        if stage is None:
            continue
        notes[stage["request_id"]].append(
            f"{stage['request__number']} is {ANNOUNCED[flag.kind]} in campaign "
            f"{stage['campaign__name']}: {flag.reason}."
        )
    if notes:
        kinds = sorted({ANNOUNCED[f.kind] for f in flags})
        announce(dict(notes), f"work {' and '.join(kinds)}", {f.campaign_id for f in flags})


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
                retries.append(next_attempt(job, top[(job.stage_id, job.index)] + 1, now))
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
    result.cancelled = [j.pk for j in jobs]
    result.retries = [j.pk for j in retries]
    return result

"""The dataset lifecycle: close, reopen, retire; invalidate files or datasets; remake them.

* **close** (``open -> closed``): the dataset is complete, no more files may be added.
  Refused while a stage producing it still has jobs to run; recovery leaves a closed
  dataset's stage alone (``reopen`` first).
* **retire** (``open | closed | invalid -> retired``): hidden from the default listings,
  kept (files, counts, history). Refused while jobs would still write into it.
* **invalidate** a dataset (``open | closed -> invalid``) or some of its files: each file
  is kept but marked (when, by whom, why), leaves the dataset's counts and its job's
  events leave the stage's progress; jobs not yet submitted no longer read it
  (``submission._inputs``, and planning skips it in an input dataset). Files made by jobs
  that read it, and files made from those, are marked ``from_invalid_input``.
* **remake**: the operator's recovery (``recovery.recover_campaign``) re-runs the jobs
  that produced the invalidated files, as new attempts; an invalid dataset is open again.

Operators and the experiment's liaisons steer datasets (``remake`` spends production
resources, so it is the operators' like every recovery launch). Every move is one
transaction, with the dataset's row locked, and recorded in the audit trail.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from experiments.models.visibility import experiment_roles, is_operator
from experiments.services import audit

from ..choices import OPEN_JOB_STATES, JobState
from ..models import Dataset, DatasetState, Job, OutputFile, Stage
from ..services.errors import CampaignError, require_operator
from .catalogue import take_out_of_counts
from .recovery import recover_campaign

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

S = DatasetState
MAX_REASON = 2000
MAX_NAMES = 10_000

# action -> (states it applies to, state it leads to); invalidate and remake are below.
MOVES: dict[str, tuple[frozenset[str], str]] = {
    "close": (frozenset({S.OPEN}), S.CLOSED),
    "reopen": (frozenset({S.CLOSED}), S.OPEN),
    "retire": (frozenset({S.OPEN, S.CLOSED, S.INVALID}), S.RETIRED),
    "invalidate": (frozenset({S.OPEN, S.CLOSED}), S.INVALID),
}
# A dataset taking no more files may not have jobs still writing into it.
NEEDS_NO_OPEN_JOBS = {"close", "retire"}


@dataclass
class Invalidation:
    """What an invalidation did."""

    dataset: Dataset
    files: int = 0
    descendants: int = 0


def may_steer(user: AbstractBaseUser, dataset: Dataset) -> bool:
    """Operators, and the liaisons of the dataset's experiment."""
    return is_operator(user) or experiment_roles(user).get(dataset.experiment_id) == "liaison"


def _require_steer(user: AbstractBaseUser, dataset: Dataset) -> None:
    if not may_steer(user, dataset):
        raise CampaignError(
            "Only operators and the experiment's liaisons change a dataset's state.",
            kind="forbidden",
        )


def clean_reason(reason: Any) -> str:
    """The reason every move needs: text, not blank, at most ``MAX_REASON`` characters."""
    if not isinstance(reason, str) or not reason.strip():
        raise CampaignError("A reason is required.", ["reason: say why (it is recorded)"])
    if len(reason) > MAX_REASON:
        raise CampaignError("The reason is too long.", [f"reason: at most {MAX_REASON} characters"])
    return reason.strip()


def _locked(dataset: Dataset | int) -> Dataset:
    pk = dataset if isinstance(dataset, int) else dataset.pk
    return Dataset.objects.select_for_update().select_related("experiment").get(pk=pk)


def _check_move(current: Dataset, action: str) -> str:
    sources, target = MOVES[action]
    if current.state not in sources:
        raise CampaignError(
            f"Cannot {action} {current.name}: it is {current.state}.",
            [f"{action} needs the state: {', '.join(sorted(sources))}"],
            kind="conflict",
        )
    if action in NEEDS_NO_OPEN_JOBS:
        waiting = Job.objects.filter(
            stage__output_dataset_id=current.pk, state__in=sorted(OPEN_JOB_STATES)
        ).count()
        if waiting:
            raise CampaignError(
                f"Cannot {action} {current.name}: {waiting} jobs would still write into it.",
                ["pause or cancel its campaign and let its jobs finish first"],
                kind="conflict",
            )
    return target


def _set_state(
    current: Dataset, target: str, user: AbstractBaseUser, reason: str, now: dt.datetime
) -> None:
    Dataset.objects.filter(pk=current.pk).update(
        state=target, state_reason=reason, state_since=now, state_by=user
    )


def change_state(
    dataset: Dataset | int, action: str, user: AbstractBaseUser, reason: str
) -> Dataset:
    """Close, reopen or retire a dataset (see the module docstring)."""
    if action not in MOVES or action == "invalidate":
        raise CampaignError(f"Unknown action {action!r}.", ["action: one of close, reopen, retire"])
    reason = clean_reason(reason)
    with transaction.atomic():
        current = _locked(dataset)
        _require_steer(user, current)
        target = _check_move(current, action)
        _set_state(current, target, user, reason, timezone.now())
        audit.record(
            f"dataset.{action}",
            current.name,
            user,
            current.experiment,
            state=[current.state, target],
            reason=reason,
        )
    current.refresh_from_db()
    return current


def invalidate_dataset(dataset: Dataset | int, user: AbstractBaseUser, reason: str) -> Invalidation:
    """Invalidate a dataset and every file it has (see the module docstring)."""
    reason = clean_reason(reason)
    with transaction.atomic():
        current = _locked(dataset)
        _require_steer(user, current)
        target = _check_move(current, "invalidate")
        now = timezone.now()
        rows = _valid_rows(OutputFile.objects.filter(dataset=current))
        descendants = _invalidate(rows, user, reason, now)
        _set_state(current, target, user, reason, now)
        audit.record(
            "dataset.invalidate",
            current.name,
            user,
            current.experiment,
            state=[current.state, target],
            reason=reason,
            files=len(rows),
            descendants=descendants,
        )
    current.refresh_from_db()
    return Invalidation(current, len(rows), descendants)


def invalidate_files(
    dataset: Dataset | int, names: Sequence[str], user: AbstractBaseUser, reason: str
) -> Invalidation:
    """Invalidate the named files of a dataset: all of them or, on any problem, none."""
    reason = clean_reason(reason)
    if (
        not isinstance(names, list | tuple)
        or not names
        or len(names) > MAX_NAMES
        # Only names a file can have: PostgreSQL cannot even compare text with a NUL in it.
        or not all(isinstance(n, str) and 0 < len(n) <= 255 and "\0" not in n for n in names)
    ):
        raise CampaignError(
            "Say which files to invalidate.",
            [f"files: a list of 1 to {MAX_NAMES} file names of the dataset"],
        )
    wanted = sorted(set(names))
    with transaction.atomic():
        current = _locked(dataset)
        _require_steer(user, current)
        if current.state == S.RETIRED:
            raise CampaignError(
                f"Cannot invalidate files of {current.name}: it is retired.", kind="conflict"
            )
        # A name may have an invalid row and its valid remake: valid wins.
        known: set[str] = set()
        valid: set[str] = set()
        for name, invalidated in OutputFile.objects.filter(
            dataset=current, name__in=wanted
        ).values_list("name", "invalidated"):
            known.add(name)
            if invalidated is None:
                valid.add(name)
        problems = [f"files: {n} is not a file of {current.name}" for n in wanted if n not in known]
        problems += [f"files: {n} is already invalid" for n in wanted if n in known - valid]
        if problems:
            raise CampaignError("Nothing was invalidated.", problems[:50])
        now = timezone.now()
        rows = _valid_rows(OutputFile.objects.filter(dataset=current, name__in=wanted))
        descendants = _invalidate(rows, user, reason, now)
        audit.record(
            "dataset.invalidate_files",
            current.name,
            user,
            current.experiment,
            reason=reason,
            files=wanted[:100],
            count=len(rows),
            descendants=descendants,
        )
    current.refresh_from_db()
    return Invalidation(current, len(rows), descendants)


def remake(dataset: Dataset | int, user: AbstractBaseUser, reason: str) -> list[int]:
    """Re-run the jobs that made the dataset's invalidated files (operators); the ids of
    the new attempts. An invalid dataset is open again: the remakes declare into it."""
    require_operator(user, "remake invalidated files")
    reason = clean_reason(reason)
    with transaction.atomic():
        current = _locked(dataset)
        if current.state not in {S.OPEN, S.INVALID}:
            raise CampaignError(
                f"Cannot remake files of {current.name}: it is {current.state}.",
                ["remake needs the state: invalid or open (reopen a closed dataset first)"],
                kind="conflict",
            )
        stages = list(Stage.objects.filter(output_dataset=current).values_list("id", "campaign_id"))
        if not stages:
            raise CampaignError(
                f"No job made the files of {current.name} (it was defined by hand).",
                ["define a corrected dataset instead"],
                kind="conflict",
            )
        if not OutputFile.objects.filter(dataset=current, invalidated__isnull=False).exists():
            raise CampaignError(f"{current.name} has no invalidated file.", kind="conflict")
        jobs: list[int] = []
        for stage_id, campaign_id in stages:
            result = recover_campaign(
                campaign_id, user, stage=stage_id, note=reason, invalid_only=True
            )
            jobs += result.jobs
        if not jobs:
            raise CampaignError(
                f"Nothing to remake in {current.name}.",
                ["its invalidated files are already being remade or were remade"],
                kind="conflict",
            )
        if current.state == S.INVALID:
            _set_state(current, S.OPEN, user, reason, timezone.now())
        audit.record(
            "dataset.remake",
            current.name,
            user,
            current.experiment,
            state=[current.state, S.OPEN],
            reason=reason,
            jobs=len(jobs),
        )
    return jobs


# --- the shared part of an invalidation ----------------------------------------------------------


FILE_FIELDS = ("id", "dataset_id", "name", "size", "events", "job_id")


def _valid_rows(files: Any) -> list[dict[str, Any]]:
    return list(
        files.filter(invalidated__isnull=True)
        .order_by("id")
        .values(*FILE_FIELDS, "job__stage_id", "job__index", "job__state", "job__events")
    )


def _invalidate(
    rows: list[dict[str, Any]], user: AbstractBaseUser | None, reason: str, now: dt.datetime
) -> int:
    """Mark ``rows`` invalid, take them out of the counts and mark their descendants.

    Returns how many files were newly marked as made from invalid input. The caller holds
    the dataset's row lock (finalize writes the same counters under it).
    """
    if not rows:
        return 0
    ids = [r["id"] for r in rows]
    job_ids = sorted({r["job_id"] for r in rows if r["job_id"]})
    # A job's events leave the stage's progress once, with its first invalid file.
    counted_out = set(
        OutputFile.objects.filter(job_id__in=job_ids, invalidated__isnull=False).values_list(
            "job_id", flat=True
        )
    )
    OutputFile.objects.filter(pk__in=ids, invalidated__isnull=True).update(
        invalidated=now, invalid_reason=reason, invalidated_by=user
    )
    take_out_of_counts(rows)
    events: Counter[int] = Counter()
    seen: set[int] = set()
    for r in rows:
        job = r["job_id"]
        if (
            job
            and job not in counted_out
            and job not in seen
            and r["job__state"] == JobState.SUCCEEDED
        ):
            seen.add(job)
            events[r["job__stage_id"]] += r["job__events"]
    for stage_id, n in events.items():
        Stage.objects.filter(pk=stage_id).update(
            events_done=Greatest(F("events_done") - n, Value(0))
        )
    return mark_descendants(rows)


def mark_descendants(rows: list[dict[str, Any]]) -> int:
    """Flag every file made, directly or through other files, from ``rows``.

    A job of a stage reading another stage consumed the outputs of the jobs with indexes
    ``input_first .. input_first + input_count - 1``; a job reading an input dataset
    consumed the names in its ``input_files``. One query per consuming stage and level,
    whatever the number of files.
    """
    marked = 0
    visited: set[int] = set()
    frontier = rows
    while frontier:
        consumers = _consumers(frontier) - visited
        visited |= consumers
        if not consumers:
            break
        frontier = list(
            OutputFile.objects.filter(
                job_id__in=sorted(consumers), from_invalid_input=False
            ).values("id", "dataset_id", "name", "job__stage_id", "job__index")
        )
        OutputFile.objects.filter(pk__in=[f["id"] for f in frontier]).update(
            from_invalid_input=True
        )
        marked += len(frontier)
    return marked


def _consumers(files: list[dict[str, Any]]) -> set[int]:
    """Ids of the succeeded jobs that read any of ``files``."""
    by_stage: dict[int, list[int]] = defaultdict(list)
    by_dataset: dict[int, set[str]] = defaultdict(set)
    for f in files:
        if f.get("job__stage_id") is not None:
            by_stage[f["job__stage_id"]].append(f["job__index"])
        by_dataset[f["dataset_id"]].add(f["name"])
    found: set[int] = set()
    for dep in Stage.objects.filter(input_stage_id__in=list(by_stage)).values(
        "id", "input_stage_id"
    ):
        indexes = sorted(set(by_stage[dep["input_stage_id"]]))
        for job_id, first, count in Job.objects.filter(
            stage_id=dep["id"],
            state=JobState.SUCCEEDED,
            input_first__isnull=False,
            input_first__lte=indexes[-1],
        ).values_list("id", "input_first", "input_count"):
            at = bisect.bisect_left(indexes, first)
            if at < len(indexes) and indexes[at] < first + count:
                found.add(job_id)
    for dep in Stage.objects.filter(input_dataset_id__in=list(by_dataset)).values(
        "id", "input_dataset_id"
    ):
        names = by_dataset[dep["input_dataset_id"]]
        for job_id, inputs in Job.objects.filter(
            stage_id=dep["id"], state=JobState.SUCCEEDED
        ).values_list("id", "input_files"):
            if inputs and names.intersection(inputs):
                found.add(job_id)
    return found

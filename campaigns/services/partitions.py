"""Declaring batch partitions (their capacity) and the experiments' quotas on them.

Operators only; each change is one transaction with its audit event (``AuditEvent``:
``set_partition``, ``remove_partition``, ``set_partition_quota``, ``clear_partition_quota``,
with the old and new values and the reason). The scheduler reads the limits every cycle
(``partition_limits``); nothing already at the batch system is touched: a lower capacity
only stops new submissions until enough work has left the partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Sum

from experiments import endpoints
from experiments.models import Experiment
from experiments.models.experiments import batch_name_validator
from experiments.services.audit import record

from ..models import Partition, PartitionQuota, Stage, partition_key, quota_limit
from .controls import _site_default
from .errors import CampaignError, require_operator

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

MAX_CAPACITY = 10_000_000
MAX_REASON = 2000


def effective_partition(
    backend: str, campaign_partition: str, experiment_partition: str
) -> str | None:
    """The partition a campaign's work runs in, as the scheduler names it (``"slurm:debug"``):
    the campaign's own, else its experiment's, else the site's default for the backend;
    ``None`` when none is named (the batch system picks: no partition limit applies)."""
    name = campaign_partition or experiment_partition or _site_default(backend, "partition")
    return partition_key(backend, name) if name else None


@dataclass(frozen=True)
class PartitionLimits:
    """``capacity``: ``{key: jobs}``; ``quotas``: ``{(experiment id, key): jobs}``."""

    capacity: dict[str, int] = field(default_factory=dict)
    quotas: dict[tuple[int, str], int] = field(default_factory=dict)


def partition_limits() -> PartitionLimits:
    """Every declared partition's capacity and every quota on them (one query: the
    partitions joined to their quotas)."""
    limits = PartitionLimits()
    for backend, name, cap, experiment_id, max_jobs, share in Partition.objects.values_list(
        "backend",
        "name",
        "capacity",
        "quotas__experiment_id",
        "quotas__max_jobs",
        "quotas__share_pct",
    ).order_by():
        key = partition_key(backend, name)
        limits.capacity[key] = cap
        if experiment_id is not None:
            limits.quotas[(experiment_id, key)] = quota_limit(cap, max_jobs, share)
    return limits


def in_flight_by_partition() -> tuple[dict[str, int], dict[tuple[int, str], int]]:
    """Jobs in flight per partition and per (experiment, partition), charged to the
    partition their campaign's work runs in now (one aggregate query)."""
    per_partition: dict[str, int] = {}
    per_experiment: dict[tuple[int, str], int] = {}
    rows = Stage.objects.exclude(n_queued=0, n_running=0, n_held=0)
    for row in (
        rows.values(
            "campaign__backend",
            "campaign__batch_partition",
            "campaign__experiment_id",
            "campaign__experiment__batch_partition",
        )
        .annotate(n=Sum(F("n_queued") + F("n_running") + F("n_held")))
        .order_by()
    ):
        key = effective_partition(
            row["campaign__backend"],
            row["campaign__batch_partition"],
            row["campaign__experiment__batch_partition"],
        )
        if key is None or not row["n"]:
            continue
        per_partition[key] = per_partition.get(key, 0) + row["n"]
        pair = (row["campaign__experiment_id"], key)
        per_experiment[pair] = per_experiment.get(pair, 0) + row["n"]
    return per_partition, per_experiment


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON:
        raise CampaignError("The reason is too long.", [f"reason: at most {MAX_REASON} characters"])
    return reason


def _capacity(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CAPACITY:
        raise CampaignError(
            "The capacity is refused.",
            [f"capacity: a whole number of jobs from 0 to {MAX_CAPACITY}, not {value!r}"],
        )
    return value


def set_partition(
    user: AbstractBaseUser,
    name: str,
    capacity: int,
    *,
    backend: str = "slurm",
    description: str | None = None,
    reason: str = "",
) -> Partition:
    """Declare a partition with its capacity, or change the capacity (and description) of
    one declared already."""
    require_operator(user, "declare batch partitions")
    problems = []
    name = (name or "").strip()
    try:
        batch_name_validator(name)
    except ValidationError as exc:
        problems.append(f"name: {exc.messages[0]}")
    problem = endpoints.endpoint_problem(backend)
    if problem:
        problems.append(f"backend: {problem}")
    if description is not None and len(description) > 500:
        problems.append("description: at most 500 characters")
    if problems:
        raise CampaignError("The partition is refused.", problems)
    capacity = _capacity(capacity)
    reason = _reason(reason)
    with transaction.atomic():
        partition = Partition.objects.select_for_update().filter(backend=backend, name=name).first()
        before = (
            None
            if partition is None
            else {"capacity": partition.capacity, "description": partition.description}
        )
        if partition is None:
            try:
                with transaction.atomic():
                    partition = Partition.objects.create(
                        backend=backend, name=name, capacity=capacity, description=description or ""
                    )
            except IntegrityError:  # declared at the same moment by someone else
                raise CampaignError(
                    f"{backend}:{name} was just declared by someone else: try again.",
                    kind="conflict",
                ) from None
        else:
            partition.capacity = capacity
            if description is not None:
                partition.description = description
            partition.save(update_fields=["capacity", "description", "updated"])
        after = {"capacity": partition.capacity, "description": partition.description}
        if before != after:
            record(
                "set_partition",
                f"partition {partition}",
                actor=user,
                previous=before,
                values=after,
                reason=reason,
            )
    return partition


def remove_partition(user: AbstractBaseUser, partition: Partition, reason: str = "") -> None:
    """Forget a partition's limits (and its quotas): its work is limited no more than the
    backend's capacity and the experiments' quotas."""
    require_operator(user, "remove batch partitions")
    reason = _reason(reason)
    with transaction.atomic():
        quotas = {
            slug: {"max_jobs": m, "share_pct": s}
            for slug, m, s in partition.quotas.values_list(
                "experiment__slug", "max_jobs", "share_pct"
            )
        }
        record(
            "remove_partition",
            f"partition {partition}",
            actor=user,
            previous={"capacity": partition.capacity, "quotas": quotas},
            reason=reason,
        )
        partition.delete()


def set_quota(
    user: AbstractBaseUser,
    partition: Partition,
    experiment: Experiment,
    *,
    max_jobs: int | None = None,
    share_pct: int | None = None,
    reason: str = "",
) -> PartitionQuota | None:
    """Set the experiment's quota on the partition: at most ``max_jobs`` jobs in flight
    there, at most ``share_pct`` % of its capacity, or both; neither removes the quota."""
    require_operator(user, "set partition quotas")
    problems = []
    if max_jobs is not None and (
        isinstance(max_jobs, bool)
        or not isinstance(max_jobs, int)
        or not 0 <= max_jobs <= MAX_CAPACITY
    ):
        problems.append(
            f"max_jobs: a whole number of jobs from 0 to {MAX_CAPACITY}, not {max_jobs!r}"
        )
    if share_pct is not None and (
        isinstance(share_pct, bool) or not isinstance(share_pct, int) or not 1 <= share_pct <= 100
    ):
        problems.append(f"share_pct: a whole percentage from 1 to 100, not {share_pct!r}")
    if problems:
        raise CampaignError("The quota is refused.", problems)
    reason = _reason(reason)
    with transaction.atomic():
        quota = (
            PartitionQuota.objects.select_for_update()
            .filter(partition=partition, experiment=experiment)
            .first()
        )
        before = (
            None if quota is None else {"max_jobs": quota.max_jobs, "share_pct": quota.share_pct}
        )
        if max_jobs is None and share_pct is None:
            if quota is not None:
                quota.delete()
                record(
                    "clear_partition_quota",
                    f"{experiment.slug} on partition {partition}",
                    actor=user,
                    experiment=experiment,
                    previous=before,
                    reason=reason,
                )
            return None
        after = {"max_jobs": max_jobs, "share_pct": share_pct}
        if quota is None:
            quota = PartitionQuota.objects.create(
                partition=partition, experiment=experiment, **after
            )
        elif before != after:
            quota.max_jobs, quota.share_pct = max_jobs, share_pct
            quota.save(update_fields=["max_jobs", "share_pct", "updated"])
        if before != after:
            record(
                "set_partition_quota",
                f"{experiment.slug} on partition {partition}",
                actor=user,
                experiment=experiment,
                previous=before,
                values={**after, "limit": quota_limit(partition.capacity, max_jobs, share_pct)},
                reason=reason,
            )
    return quota


@dataclass
class PartitionUsage:
    """A declared partition as the pages show it."""

    partition: Partition
    in_flight: int
    quotas: list[tuple[PartitionQuota, int]]  # (quota, the experiment's jobs in flight there)

    @property
    def percent(self) -> float:
        cap = self.partition.capacity
        return round(100 * min(self.in_flight / cap, 1.0), 1) if cap else 0.0


def partition_usage() -> list[PartitionUsage]:
    """Every declared partition with its quotas and what is in flight there (three queries)."""
    per_partition, per_experiment = in_flight_by_partition()
    partitions = list(
        Partition.objects.prefetch_related("quotas__experiment").order_by("backend", "name")
    )
    return [
        PartitionUsage(
            p,
            per_partition.get(p.key, 0),
            [(q, per_experiment.get((q.experiment_id, p.key), 0)) for q in p.quotas.all()],
        )
        for p in partitions
    ]

"""Batch partitions with a capacity of their own, and the experiments' quotas on them.

A backend's capacity (``OPOS_BACKEND_CAPACITY``) and an experiment's quota (``job_quota``)
count jobs in flight over the whole batch system; a partition declared here adds a limit
for the work that runs in it (a campaign's effective partition: its own, its
experiment's, or the site's default), and a quota caps one experiment's jobs there, as a
number of jobs, a share of the partition's capacity, or both (the lower wins). Partitions
not declared here have no limit of their own.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from experiments.endpoints import NAME_MAX_LENGTH, validate_endpoint
from experiments.models import Experiment
from experiments.models.experiments import batch_name_validator


class Partition(models.Model):
    # A batch endpoint's name: partitions of two clusters are apart even when named alike.
    backend = models.CharField(
        max_length=NAME_MAX_LENGTH, validators=[validate_endpoint], default="slurm"
    )
    name = models.CharField(
        max_length=200,
        validators=[batch_name_validator],
        help_text="The partition's name at the batch system (Slurm: as sinfo lists it).",
    )
    capacity = models.PositiveIntegerField(
        help_text="Jobs in flight (queued, running or held) in this partition at most."
    )
    description = models.CharField(max_length=500, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["backend", "name"]
        constraints = [
            models.UniqueConstraint(fields=["backend", "name"], name="partition_once_per_backend")
        ]

    def __str__(self) -> str:
        return f"{self.backend}:{self.name}"

    @property
    def key(self) -> str:
        """How the scheduler names it: ``"slurm:debug"``."""
        return partition_key(self.backend, self.name)


class PartitionQuota(models.Model):
    partition = models.ForeignKey(Partition, on_delete=models.CASCADE, related_name="quotas")
    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="partition_quotas"
    )
    max_jobs = models.PositiveIntegerField(
        null=True, blank=True, help_text="Jobs of the experiment in flight there at most."
    )
    share_pct = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Percent of the partition's capacity the experiment may hold.",
    )
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["partition", "experiment__slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["partition", "experiment"], name="partition_quota_once_per_experiment"
            ),
            models.CheckConstraint(
                condition=models.Q(max_jobs__isnull=False) | models.Q(share_pct__isnull=False),
                name="partition_quota_says_something",
            ),
            models.CheckConstraint(
                condition=models.Q(share_pct__isnull=True)
                | models.Q(share_pct__gte=1, share_pct__lte=100),
                name="partition_quota_share_is_a_percentage",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.experiment} on {self.partition}"

    @property
    def limit(self) -> int:
        return quota_limit(self.partition.capacity, self.max_jobs, self.share_pct)


def partition_key(backend: str, name: str) -> str:
    return f"{backend}:{name}"


def quota_limit(capacity: int, max_jobs: int | None, share_pct: int | None) -> int:
    """Jobs in flight a quota allows: the lower of its number and its share (rounded down,
    so a share never lets an experiment hold more than its percentage)."""
    limits = [capacity]
    if max_jobs is not None:
        limits.append(max_jobs)
    if share_pct is not None:
        limits.append(capacity * share_pct // 100)
    return min(limits)

"""Output storage: each experiment's area, the replicas of catalogued files, and the
transfers still waiting to reach storage.

An experiment without a ``StorageArea`` row stores into the embedded default, a local
folder per experiment under ``OPOS_STORAGE_DIR``. Replicas are written in the same
transaction as the catalogue's files (``execution/finalize.py``), so a file in the
catalogue of a job finished since storage exists always has its verified copy.
"""

from __future__ import annotations

from django.db import models

from experiments.models import Experiment
from experiments.models.visibility import VisibleQuerySet


class StorageAreaQuerySet(VisibleQuerySet):
    experiment_path = "experiment"


class StorageArea(models.Model):
    """Where an experiment's outputs are kept: a local folder or an XRootD endpoint."""

    experiment = models.OneToOneField(
        Experiment, on_delete=models.CASCADE, related_name="storage_area"
    )
    url = models.CharField(
        max_length=500,
        help_text="root://host:port//path for XRootD, or an absolute local folder.",
    )
    updated = models.DateTimeField(auto_now=True)

    objects = StorageAreaQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.experiment_id}: {self.url}"


class ReplicaQuerySet(VisibleQuerySet):
    experiment_path = "file__dataset__experiment"


class Replica(models.Model):
    """A verified copy of a catalogued file in storage."""

    file = models.ForeignKey(
        "campaigns.OutputFile", on_delete=models.CASCADE, related_name="replicas"
    )
    storage = models.ForeignKey(
        StorageArea,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="replicas",
        help_text="Empty: the embedded default area (a local folder).",
    )
    url = models.CharField(max_length=1000, help_text="Where the copy is (root:// or file://).")
    adler32 = models.CharField(max_length=8, help_text="adler32, 8 lowercase hex digits.")
    verified_at = models.DateTimeField(help_text="When both ends' checksums were compared.")
    adopted = models.BooleanField(
        default=False, help_text="Found already in storage with the same checksum: not copied."
    )

    objects = ReplicaQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["file", "url"], name="replica_once")]

    def __str__(self) -> str:
        return self.url


class TransferQuerySet(VisibleQuerySet):
    experiment_path = "job__stage__campaign__experiment"


class Transfer(models.Model):
    """A succeeded job whose outputs did not reach storage yet: its failed attempts.

    The job keeps its in-flight state meanwhile (it is not ``succeeded`` until its outputs
    are verified in storage); finalize tries again after ``next_try``. The row goes away
    in the transaction that finishes the job.
    """

    job = models.OneToOneField("campaigns.Job", on_delete=models.CASCADE, related_name="transfer")
    attempts = models.PositiveSmallIntegerField(default=0)
    next_try = models.DateTimeField(null=True, blank=True)
    error_kind = models.CharField(
        max_length=20,
        blank=True,
        help_text="unreachable, denied, no_space, checksum, missing or other.",
    )
    reason = models.CharField(max_length=500, blank=True)
    updated = models.DateTimeField(auto_now=True)

    objects = TransferQuerySet.as_manager()

    def __str__(self) -> str:
        return f"transfer of job {self.job_id}: {self.attempts} attempts"

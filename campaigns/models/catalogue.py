"""The file catalogue: datasets and the output files jobs declared into them."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from experiments.models import Experiment
from experiments.models.visibility import VisibleQuerySet


class DatasetQuerySet(VisibleQuerySet):
    experiment_path = "experiment"


class DatasetState(models.TextChoices):
    """A dataset's lifecycle (the moves are in ``execution/lifecycle.py``)."""

    OPEN = "open", "open"
    CLOSED = "closed", "closed (complete)"
    INVALID = "invalid", "invalid"
    RETIRED = "retired", "retired"


class Dataset(models.Model):
    """A named collection of files: a stage's output, or an input a sample reads.

    Planning creates one (empty) dataset per planned stage; execution declares
    files into it and keeps ``file_count``, ``size_bytes`` and ``events`` (of its
    valid files: an invalidated file leaves the counts).
    """

    experiment = models.ForeignKey(Experiment, on_delete=models.PROTECT, related_name="datasets")
    name = models.CharField(max_length=255, unique=True)
    description = models.TextField(blank=True)
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="datasets",
        help_text="The campaign whose plan produces it (empty for external inputs).",
    )
    file_count = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    events = models.PositiveBigIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    # Lifecycle; db_default: older workers' inserts leave these columns out.
    state = models.CharField(
        max_length=16,
        choices=DatasetState.choices,
        default=DatasetState.OPEN,
        db_default=DatasetState.OPEN,
    )
    state_reason = models.TextField(
        blank=True, default="", db_default="", help_text="Why it moved to its current state."
    )
    state_since = models.DateTimeField(null=True, blank=True)
    state_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = DatasetQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class OutputFileQuerySet(VisibleQuerySet):
    experiment_path = "dataset__experiment"


class OutputFile(models.Model):
    """One file in the catalogue: what it is, how big, its checksum, and which job made it."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="files")
    name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    checksum = models.CharField(max_length=80, help_text="sha256, lowercase hex.")
    events = models.PositiveBigIntegerField(default=0)
    job = models.ForeignKey(
        "campaigns.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="outputs"
    )
    path = models.CharField(
        max_length=1000, blank=True, help_text="Where the file is (set by execution)."
    )
    created = models.DateTimeField(auto_now_add=True)
    # Invalidation: the file stays in the catalogue (kept, shown) but leaves the counts
    # and the inputs of jobs not yet submitted; a remake may declare the name again.
    invalidated = models.DateTimeField(null=True, blank=True)
    invalid_reason = models.TextField(blank=True, default="", db_default="")
    invalidated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    from_invalid_input = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Made by a job that read a file since invalidated.",
    )

    objects = OutputFileQuerySet.as_manager()

    class Meta:
        ordering = ["dataset", "name"]
        constraints = [
            # Among valid files only: an invalidated file's remake carries its name.
            models.UniqueConstraint(
                fields=["dataset", "name"],
                condition=models.Q(invalidated__isnull=True),
                name="output_name_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name}/{self.name}"

    @property
    def valid(self) -> bool:
        return self.invalidated is None

"""Execution's own records: failure rules per template, and flags on work that stopped moving."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from experiments.models import WorkflowTemplate
from experiments.models.visibility import VisibleQuerySet

from ..choices import FailureClass


class RetryAction(models.TextChoices):
    """What a failure rule does with a failed job."""

    RETRY = "retry", "Retry as is"
    MORE_MEMORY = "more_memory", "Retry with more memory"
    MORE_WALLTIME = "more_walltime", "Retry with more walltime"
    NEVER = "never", "Never retry"


class FailureRule(models.Model):
    """A per-template rule: a failure that matches becomes ``failure_class`` and gets ``action``.

    A rule matches when every criterion it sets matches (exit code in ``exit_codes``,
    ``stderr_pattern`` found in the tail of the job's stderr, ``batch_reason`` contained in
    what the batch system said). Rules of the job's template are tried in ``position`` order
    before the built-in defaults (``campaigns.execution.failures.DEFAULT_RULES``); a rule
    without a template applies to every template. Rules are operations policy, read live:
    a changed rule applies to the next failure, also of work planned before.
    """

    template = models.ForeignKey(
        WorkflowTemplate,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="failure_rules",
        help_text="Empty: applies to every template (after the template's own rules).",
    )
    position = models.PositiveSmallIntegerField(default=0)
    exit_codes = models.JSONField(default=list, blank=True, help_text="Empty: any exit code.")
    stderr_pattern = models.CharField(
        max_length=200, blank=True, help_text="Regular expression searched in the stderr tail."
    )
    batch_reason = models.CharField(
        max_length=100, blank=True, help_text="Text in the batch system's reason, e.g. TIMEOUT."
    )
    failure_class = models.CharField(max_length=32, choices=FailureClass.choices)
    action = models.CharField(max_length=16, choices=RetryAction.choices)
    max_attempts = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Attempts in all; empty for the site default."
    )
    factor = models.FloatField(default=1.5, help_text="Memory or walltime multiplier.")
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["template_id", "position", "id"]

    def __str__(self) -> str:
        return f"{self.failure_class} -> {self.action}"

    def clean(self) -> None:
        if not (self.exit_codes or self.stderr_pattern or self.batch_reason):
            raise ValidationError("A rule needs an exit code, a stderr pattern or a batch reason.")
        if not isinstance(self.exit_codes, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) and -255 <= c <= 255
            for c in self.exit_codes
        ):
            raise ValidationError({"exit_codes": "a list of whole numbers from -255 to 255"})
        if self.stderr_pattern:
            # Imported here: the execution package imports the models.
            from ..execution.patterns import UnsafePattern, check_pattern

            try:
                check_pattern(self.stderr_pattern)
            except UnsafePattern as exc:
                raise ValidationError({"stderr_pattern": str(exc)}) from exc
        if not 1.0 <= self.factor <= 10.0:
            raise ValidationError({"factor": "between 1 and 10"})


class StuckKind(models.TextChoices):
    """Why work is flagged as stuck."""

    QUEUED = "queued_too_long", "Queued too long"
    HELD = "held_too_long", "Held too long"
    RUNNING = "running_too_long", "Running far beyond its walltime estimate"
    NO_PROGRESS = "no_progress", "Stage made no progress"
    SUBMISSION = "submission_unresolved", "Submission could not be resolved"
    GAVE_UP = "gave_up", "Remaining jobs gave up"


class StuckFlagQuerySet(VisibleQuerySet):
    experiment_path = "campaign__experiment"

    def open(self) -> StuckFlagQuerySet:
        return self.filter(resolved_at__isnull=True)


class StuckFlag(models.Model):
    """A job or stage that stopped moving, with the reason; operators see and act on it.

    Raised and resolved by ``campaigns.execution.stuck.detect_stuck`` (resolved once the
    condition ends, e.g. the job started or was cancelled and retried). At most one open
    flag per job and kind, and per stage and kind.
    """

    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="stuck_flags"
    )
    stage = models.ForeignKey("campaigns.Stage", on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(
        "campaigns.Job", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    kind = models.CharField(max_length=24, choices=StuckKind.choices)
    reason = models.CharField(max_length=500)
    created = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    objects = StuckFlagQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "kind"],
                condition=models.Q(resolved_at__isnull=True, job__isnull=False),
                name="stuck_job_open_once",
            ),
            models.UniqueConstraint(
                fields=["stage", "kind"],
                condition=models.Q(resolved_at__isnull=True, job__isnull=True),
                name="stuck_stage_open_once",
            ),
        ]
        indexes = [
            models.Index(
                fields=["campaign"],
                condition=models.Q(resolved_at__isnull=True),
                name="stuck_open_by_campaign",
            )
        ]

    def __str__(self) -> str:
        target = f"job {self.job_id}" if self.job_id else f"stage {self.stage_id}"
        return f"{target}: {self.kind}"

"""Controls sent to the batch system on behalf of an operator: one row per job.

A pause, a resume, a priority change or a new placement reaches jobs already queued at the
batch system as ``BatchControl`` rows, written in the transaction that records the change
(so the audit and the controls are one). Execution applies them on its next cycle
(``campaigns.execution.controls``) and writes each job's answer here: done, skipped (the job
had started or ended) or, after a few refused attempts, failed with the batch system's words.
"""

from __future__ import annotations

from django.db import models

from experiments.models.visibility import VisibleQuerySet


class ControlAction(models.TextChoices):
    HOLD = "hold", "Hold (pause)"
    RELEASE = "release", "Release (resume)"
    PRIORITY = "priority", "Change priority"
    MOVE = "move", "Move (partition, account, QOS)"


class ControlState(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    SKIPPED = "skipped", "Not needed"  # the job had already started or ended
    SUPERSEDED = "superseded", "Superseded"  # a later control replaced it before it was sent
    FAILED = "failed", "Failed"


class BatchControlQuerySet(VisibleQuerySet):
    experiment_path = "campaign__experiment"


class BatchControl(models.Model):
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="batch_controls"
    )
    job = models.ForeignKey("campaigns.Job", on_delete=models.CASCADE, related_name="+")
    event = models.ForeignKey(
        "campaigns.CampaignEvent",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="batch_controls",
        help_text="The recorded change that asked for it.",
    )
    action = models.CharField(max_length=16, choices=ControlAction.choices)
    # The priority level (0..3) or the placement ({"partition": ..., ...}).
    value = models.JSONField(default=dict, blank=True)
    state = models.CharField(
        max_length=16, choices=ControlState.choices, default=ControlState.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    detail = models.CharField(max_length=500, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    objects = BatchControlQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["id"],
                condition=models.Q(state="pending"),
                name="batch_control_pending",
            ),
            models.Index(fields=["campaign", "state"], name="batch_control_campaign"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(action__in=ControlAction.values),
                name="batch_control_action_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=ControlState.values),
                name="batch_control_state_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} job {self.job_id}: {self.state}"

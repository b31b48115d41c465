"""The processes that run execution: Celery workers and beat, known by their heartbeats."""

from __future__ import annotations

from django.db import models


class ProcessRole(models.TextChoices):
    WORKER = "worker", "Worker"
    BEAT = "beat", "Beat"


class WorkerHeartbeat(models.Model):
    """One Celery worker or beat, by its node name (``celery@host``, ``beat@host``).

    Written by the process itself (``campaigns.execution.heartbeat``): on start (a worker
    that starts again under the same name takes the row over, with its new pid and start
    time), every ``OPOS_HEARTBEAT_INTERVAL_S`` while it runs (``seen_at``), and on a clean
    stop (``stopped_at``). A worker also records the last ``campaigns.heartbeat`` task it
    ran: when beat sent it and when it ran, which proves beat -> broker -> worker works.
    ``/healthz`` and the recovery of abandoned submissions read these rows.
    """

    name = models.CharField(max_length=200, unique=True, help_text="Celery node name.")
    role = models.CharField(max_length=8, choices=ProcessRole.choices)
    hostname = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(help_text="Its latest heartbeat.")
    stopped_at = models.DateTimeField(null=True, blank=True, help_text="Stopped cleanly.")
    task_sent_at = models.DateTimeField(
        null=True, blank=True, help_text="When beat sent the latest heartbeat task it ran."
    )
    task_ran_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["role", "name"]
        indexes = [models.Index(fields=["role", "seen_at"], name="heartbeat_role_seen")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=ProcessRole.values), name="heartbeat_role_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.role} {self.name} (pid {self.pid})"

"""The audit trail: role grants and eligibility settings, append-only."""

from django.conf import settings
from django.db import models

from .experiments import Experiment
from .visibility import VisibleQuerySet


class AuditEventQuerySet(VisibleQuerySet):
    experiment_path = "experiment"


class AuditEvent(models.Model):
    """Who changed what that decides access or eligibility, and when.

    Request transitions have their own log (``Transition``); this records
    the rest: role grants, SLA acceptance, training records, registered and
    approved production code. Rows are only inserted, never edited.
    """

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=40, db_index=True)
    experiment = models.ForeignKey(
        Experiment, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    target = models.CharField(max_length=200, help_text="What was changed, in words.")
    data = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        # Moved from requests_app by a state-only migration: the table kept its name.
        db_table = "requests_app_auditevent"
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M} {self.actor or 'system'} {self.action} {self.target}"

"""Extensions of running requests: more events, filed and approved like a request."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxLengthValidator
from django.db import models

from experiments.models.visibility import VisibleQuerySet
from requests_app.models import ProductionRequest, Sample

from ..choices import ExtensionState


class ExtensionQuerySet(VisibleQuerySet):
    experiment_path = "request__experiment"


class Extension(models.Model):
    """More events for one sample of a running Monte Carlo request.

    Filed by a liaison of the experiment or an operator (``submitted``); an operator
    approves it, which appends the new jobs to the plan in the same transaction
    (``approved``), or rejects it with a reason. Every step is also recorded on the
    request's history and, once applied, as a campaign event.
    """

    request = models.ForeignKey(
        ProductionRequest, on_delete=models.CASCADE, related_name="extensions"
    )
    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="extensions")
    events = models.PositiveBigIntegerField(help_text="Events added to the sample.")
    state = models.CharField(
        max_length=12, choices=ExtensionState.choices, default=ExtensionState.SUBMITTED
    )
    reason = models.TextField(validators=[MaxLengthValidator(5000)], help_text="Why more events.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decision_note = models.TextField(blank=True, validators=[MaxLengthValidator(5000)])
    jobs_added = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    decided = models.DateTimeField(null=True, blank=True)

    objects = ExtensionQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(events__gt=0), name="extension_events_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=ExtensionState.values), name="extension_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"extension {self.pk} of {self.request_id}: +{self.events} ({self.state})"

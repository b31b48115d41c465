"""Campaigns: production rounds that group requests under one deadline and priority."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.validators import MaxLengthValidator
from django.db import models
from django.utils import timezone

from experiments.endpoints import NAME_MAX_LENGTH, label, validate_endpoint
from experiments.models import Experiment
from experiments.models.experiments import BatchPlacement
from experiments.models.visibility import VisibleQuerySet
from requests_app.choices import Priority
from requests_app.models import ProductionRequest

from ..choices import CampaignEventKind, CampaignState, LaunchPhase

# The latest day a deadline counts as ending on. Far beyond any horizon, yet early enough
# that arithmetic on the instant stays representable: the day after 9999-12-31 does not
# exist, and charts span up to twice the distance from now to the deadline.
LAST_DEADLINE_DAY = dt.date(5000, 1, 1)
# The latest instant a projection or deadline is taken to mean (beyond it: "never"); a day
# after the last deadline's end, so that end is before it in every time zone.
FAR_FUTURE = dt.datetime.combine(LAST_DEADLINE_DAY + dt.timedelta(days=2), dt.time.min, dt.UTC)


def deadline_moment(day: dt.date | None) -> dt.datetime:
    """The instant a deadline date ends: midnight after it, in the site's time zone.

    Deadlines are dates (what a collaboration announces); the scheduler and the
    forecasts compare instants, so the whole deadline day counts as on time. A
    deadline stored before the horizon was enforced (``9999-12-31``) ends on
    ``LAST_DEADLINE_DAY`` instead of raising, so its campaign's pages (where an
    operator repairs it) and everyone's schedule still compute. A draft saved before
    its deadline was given (``None``) ends there too, for the same reason.
    """
    day = LAST_DEADLINE_DAY if day is None else min(day, LAST_DEADLINE_DAY)
    # The site's zone, not the viewer's (pages activate each user's own): every page, the
    # scheduler and the exports must agree on when a deadline ends.
    return timezone.make_aware(
        dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min),
        timezone.get_default_timezone(),
    )


class CampaignQuerySet(VisibleQuerySet):
    experiment_path = "experiment"


class Campaign(BatchPlacement):
    """A production round (DUNE's "MCC5.0"): requests of several groups under one deadline.

    ``state`` changes only through ``campaigns.services`` (checked against
    ``campaigns.workflow.CAMPAIGN_ACTIONS``, recorded as a ``CampaignEvent``).
    ``cancel_pending`` is the flag execution acts on after a cancel: it kills
    what is queued or running at the batch system, then clears the flag.
    """

    experiment = models.ForeignKey(Experiment, on_delete=models.PROTECT, related_name="campaigns")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, validators=[MaxLengthValidator(5000)])
    deadline = models.DateField()
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    state = models.CharField(
        max_length=16, choices=CampaignState.choices, default=CampaignState.PLANNED
    )
    throttle = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Maximum jobs of this campaign in flight at once; empty for no limit "
        "beyond the experiment quota.",
    )
    # A batch endpoint's name (experiments/endpoints.py), checked against the settings.
    backend = models.CharField(max_length=NAME_MAX_LENGTH, validators=[validate_endpoint])
    cancel_pending = models.BooleanField(
        default=False,
        help_text="Set on cancel while jobs may still be at the batch system; execution "
        "cancels them and clears it.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # One bad campaign must not stop the others: when scheduling or submitting it raises,
    # execution records the error here, skips it, and goes on with everything else. It is
    # tried again every cycle and the fault clears itself once the step succeeds (after an
    # operator repaired what was wrong). Recorded as BLOCKED / UNBLOCKED events.
    # A database default too: workers of the previous version insert campaigns without it.
    fault = models.CharField(
        max_length=500,
        blank=True,
        default="",
        db_default="",
        help_text="The error that blocks this campaign, if any.",
    )
    fault_since = models.DateTimeField(null=True, blank=True)
    # Steering settings and state (campaigns.services.testlaunch, .completion). Database
    # defaults: workers of the previous version insert campaigns without these columns.
    test_jobs = models.PositiveSmallIntegerField(
        default=0,
        db_default=0,
        help_text="Test launch: jobs of each stage submitted first; 0 for none.",
    )
    test_auto_continue = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Go on with the full launch by itself once the test jobs succeeded.",
    )
    test_phase = models.CharField(
        max_length=8, choices=LaunchPhase.choices, blank=True, default="", db_default=""
    )
    test_result = models.CharField(
        max_length=500, blank=True, default="", db_default="", help_text="Why a test failed."
    )
    completion_pct = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Force-complete threshold in percent; empty for the templates' default.",
    )

    objects = CampaignQuerySet.as_manager()

    class Meta:
        ordering = ["deadline", "name"]
        indexes = [models.Index(fields=["state", "deadline"], name="campaign_state_deadline")]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="campaign_name_once"),
            models.CheckConstraint(
                condition=models.Q(state__in=CampaignState.values), name="campaign_state_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(priority__in=Priority.values), name="campaign_priority_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(throttle__isnull=True) | models.Q(throttle__gt=0),
                name="campaign_throttle_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(completion_pct__isnull=True)
                | models.Q(completion_pct__gte=1, completion_pct__lte=100),
                name="campaign_completion_pct_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.experiment.slug}/{self.name}"

    @property
    def backend_label(self) -> str:
        """Its endpoint as pages show it: "Slurm", "slurm-b (Slurm)" (from the settings)."""
        return label(self.backend)

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("campaigns:detail", args=[self.pk])

    @property
    def deadline_at(self) -> dt.datetime:
        return deadline_moment(self.deadline)


class CampaignRequestQuerySet(VisibleQuerySet):
    experiment_path = "campaign__experiment"


class CampaignRequest(models.Model):
    """A request scheduled into a campaign (a request is in at most one campaign).

    The link lives here, not on the request, because intake never knows about
    execution. Removing a not-yet-started request deletes the link and its plan.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="links")
    request = models.OneToOneField(
        ProductionRequest, on_delete=models.PROTECT, related_name="campaign_link"
    )
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    added = models.DateTimeField(auto_now_add=True)
    # Partial completion (campaigns.services.completion): the request was completed by an
    # operator with part of its work abandoned. ``cancel_pending`` asks execution to cancel
    # the request's jobs still at the batch system, as ``Campaign.cancel_pending`` does for
    # a whole campaign. Database defaults: older workers insert links without them.
    abandoned_at = models.DateTimeField(null=True, blank=True)
    abandon_reason = models.TextField(
        blank=True, default="", db_default="", validators=[MaxLengthValidator(5000)]
    )
    abandoned_jobs = models.PositiveIntegerField(default=0, db_default=0)
    done_pct = models.FloatField(
        null=True, blank=True, help_text="Share of the final stages' jobs done when completed."
    )
    cancel_pending = models.BooleanField(default=False, db_default=False)

    objects = CampaignRequestQuerySet.as_manager()

    class Meta:
        ordering = ["campaign", "request__deadline", "request_id"]

    def __str__(self) -> str:
        return f"{self.request_id} in campaign {self.campaign_id}"


class CampaignEventQuerySet(VisibleQuerySet):
    experiment_path = "campaign__experiment"


class CampaignEvent(models.Model):
    """An audited campaign action or edit: who, when, why, and the values before and after.

    Rows are only ever inserted. ``changes`` maps a field to ``[old, new]``.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=CampaignEventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True, validators=[MaxLengthValidator(5000)])
    changes = models.JSONField(default=dict, blank=True)
    request = models.ForeignKey(
        ProductionRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    objects = CampaignEventQuerySet.as_manager()

    class Meta:
        ordering = ["created", "id"]
        indexes = [models.Index(fields=["campaign", "created"], name="campaign_event_time")]

    def __str__(self) -> str:
        return f"campaign {self.campaign_id}: {self.kind}"

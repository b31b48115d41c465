"""Read-side records: progress snapshots and milestones, digest preferences, issued
status reports, and counters of the Celery tasks for ``/metrics``.

Nothing here is a source of truth for execution: snapshots are a history of the
stage counters (for burn-up charts and throughput), milestones are the first
snapshot that crossed a threshold, task counters are instrumentation.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from campaigns.models import Campaign
from experiments.models import Experiment
from experiments.models.visibility import VisibleQuerySet
from requests_app.models import ProductionRequest, Sample

from .choices import CommitmentStatus, MilestoneKind, SnapshotLevel, SnapshotTier


class ProgressSnapshotQuerySet(VisibleQuerySet):
    experiment_path = "campaign__experiment"


class ProgressSnapshot(models.Model):
    """Progress of a campaign, one of its requests or one sample at one moment.

    Recorded by ``monitoring.services.snapshots.record_snapshots`` (beat) from the
    stage counters; thinned by ``thin_snapshots``: every row of the last 48 h is
    kept, then one an hour (``tier`` hourly) up to 30 days, then one a day.
    ``events_done`` counts events through the sample's last stage (what the
    physicist asked for), ``jobs`` the jobs of every stage by state.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="snapshots")
    level = models.CharField(max_length=10, choices=SnapshotLevel.choices)
    request = models.ForeignKey(
        ProductionRequest, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    sample = models.ForeignKey(
        Sample, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    taken_at = models.DateTimeField()
    tier = models.PositiveSmallIntegerField(choices=SnapshotTier.choices, default=SnapshotTier.RAW)
    events_done = models.PositiveBigIntegerField(default=0)
    events_target = models.PositiveBigIntegerField(default=0)
    jobs_total = models.PositiveIntegerField(default=0)
    jobs = models.JSONField(default=dict, blank=True, help_text="Jobs by state, every stage.")
    succeeded = models.PositiveIntegerField(default=0, help_text="Jobs succeeded, every stage.")
    running = models.PositiveIntegerField(default=0)
    in_flight = models.PositiveIntegerField(default=0)
    slots = models.PositiveIntegerField(
        default=0, help_text="Campaign level: jobs in flight it was allotted (full speed)."
    )

    objects = ProgressSnapshotQuerySet.as_manager()

    class Meta:
        ordering = ["taken_at", "id"]
        indexes = [
            # One index per series: charts and the window points read a series by time.
            models.Index(
                fields=["campaign", "taken_at"],
                condition=models.Q(level=SnapshotLevel.CAMPAIGN),
                name="snapshot_campaign_series",
            ),
            models.Index(
                fields=["request", "taken_at"],
                condition=models.Q(level=SnapshotLevel.REQUEST),
                name="snapshot_request_series",
            ),
            models.Index(
                fields=["sample", "taken_at"],
                condition=models.Q(level=SnapshotLevel.SAMPLE),
                name="snapshot_sample_series",
            ),
            # Thinning reads only the rows due for their next tier.
            models.Index(fields=["tier", "taken_at"], name="snapshot_tier_time"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(level__in=SnapshotLevel.values), name="snapshot_level_valid"
            ),
        ]

    def __str__(self) -> str:
        when = f"{self.taken_at:%Y-%m-%d %H:%M}"
        return f"{self.level} snapshot of campaign {self.campaign_id} at {when}"


class MilestoneQuerySet(VisibleQuerySet):
    experiment_path = "campaign__experiment"


class Milestone(models.Model):
    """When a campaign (``request`` empty) or one of its requests first reached a milestone.

    Taken from the first snapshot that crossed the threshold, and kept apart from
    the snapshots so thinning never blurs it.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="milestones")
    request = models.ForeignKey(
        ProductionRequest, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=MilestoneKind.choices)
    reached_at = models.DateTimeField()

    objects = MilestoneQuerySet.as_manager()

    class Meta:
        ordering = ["reached_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "kind"],
                condition=models.Q(request__isnull=True),
                name="milestone_campaign_once",
            ),
            models.UniqueConstraint(
                fields=["request", "kind"],
                condition=models.Q(request__isnull=False),
                name="milestone_request_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of campaign {self.campaign_id} at {self.reached_at:%Y-%m-%d %H:%M}"


class CommitmentQuerySet(VisibleQuerySet):
    experiment_path = "experiment"


class Commitment(models.Model):
    """A milestone promised to an experiment: "50% of the events by Dec 2 12:00".

    Of a request (proposed at its approval; ``campaign`` empty) or of a campaign
    (proposed at its launch; ``request`` empty). Recorded with who confirmed it and
    when; the promised moment changes only through ``monitoring.services.commitments.
    change`` with a reason, each change kept as a ``CommitmentChange``. ``status`` is the
    last one announced (at risk and missed reach people once per change); pages compute
    the current one from the actual or forecast date.
    """

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.CASCADE, related_name="commitments"
    )
    request = models.ForeignKey(
        ProductionRequest,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="commitments",
    )
    kind = models.CharField(max_length=16, choices=MilestoneKind.choices)
    promised_at = models.DateTimeField()
    status = models.CharField(
        max_length=10, choices=CommitmentStatus.choices, default=CommitmentStatus.ON_TRACK
    )
    status_changed_at = models.DateTimeField(null=True, blank=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    confirmed_at = models.DateTimeField()
    proposed_at = models.DateTimeField(
        null=True, blank=True, help_text="What the tracker proposed from its forecast."
    )

    objects = CommitmentQuerySet.as_manager()

    class Meta:
        ordering = ["promised_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(campaign__isnull=True, request__isnull=False)
                | models.Q(campaign__isnull=False, request__isnull=True),
                name="commitment_of_request_or_campaign",
            ),
            models.UniqueConstraint(
                fields=["campaign", "kind"],
                condition=models.Q(request__isnull=True),
                name="commitment_campaign_once",
            ),
            models.UniqueConstraint(
                fields=["request", "kind"],
                condition=models.Q(request__isnull=False),
                name="commitment_request_once",
            ),
        ]

    def __str__(self) -> str:
        whose = f"request {self.request_id}" if self.request_id else f"campaign {self.campaign_id}"
        return f"{self.kind} of {whose} by {self.promised_at:%Y-%m-%d %H:%M}"


class CommitmentChange(models.Model):
    """One change of a promised moment, with its reason (the history; rows never edited)."""

    commitment = models.ForeignKey(Commitment, on_delete=models.CASCADE, related_name="changes")
    promised_before = models.DateTimeField()
    promised_after = models.DateTimeField()
    reason = models.TextField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"commitment {self.commitment_id}: {self.promised_before} -> {self.promised_after}"


class DigestPreference(models.Model):
    """A user's opt-in to the daily email digest of the experiments they can see, and to
    the weekly status report of each."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="digest_preference"
    )
    daily = models.BooleanField(default=False, help_text="Send me the daily progress digest.")
    last_sent_at = models.DateTimeField(null=True, blank=True)
    # None: not chosen, so the liaisons of an experiment get its report and nobody else.
    weekly = models.BooleanField(
        null=True, blank=True, help_text="Send me the weekly status report of my experiments."
    )
    weekly_sent_at = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"digest for {self.user}: {'daily' if self.daily else 'off'}"


class StatusReportQuerySet(VisibleQuerySet):
    experiment_path = "experiment"


class StatusReport(models.Model):
    """A status report an operator issued to an experiment: the period it covered.

    The next report shows what progressed since the end of the last one.
    """

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="status_reports"
    )
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    objects = StatusReportQuerySet.as_manager()

    class Meta:
        ordering = ["-period_end", "-id"]
        indexes = [models.Index(fields=["experiment", "period_end"], name="report_experiment_end")]

    def __str__(self) -> str:
        return f"{self.experiment.slug} report to {self.period_end:%Y-%m-%d %H:%M}"


class TaskStat(models.Model):
    """Counters of one Celery task, kept by ``monitoring.instrumentation`` for /metrics.

    In the database because web, worker and beat are separate processes: the
    web process serving /metrics must see what the worker counted.
    """

    name = models.CharField(max_length=100, unique=True)
    runs = models.PositiveBigIntegerField(default=0)
    failures = models.PositiveBigIntegerField(default=0)
    retries = models.PositiveBigIntegerField(default=0)
    duration_sum_s = models.FloatField(default=0.0)
    last_duration_s = models.FloatField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    results = models.JSONField(
        default=dict, blank=True, help_text="Sums of the whole numbers the task returned."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}: {self.runs} runs, {self.failures} failures"


class AllocationQuerySet(VisibleQuerySet):
    experiment_path = "experiment"


class Allocation(models.Model):
    """CPU hours granted to an experiment for a period, set by operators.

    The accounting ledger (``monitoring.services.accounting``) sets the core hours the
    experiment's attempts were charged in the period against it, with a projection to the
    period's end at the current rate. Periods of one experiment do not overlap (checked by
    the form, the API and the admin through ``clean``); ``end`` is the last day included.
    """

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="allocations")
    start = models.DateField(help_text="First day of the period.")
    end = models.DateField(help_text="Last day of the period (included).")
    cpu_hours = models.PositiveBigIntegerField(help_text="Core hours granted for the period.")
    note = models.CharField(max_length=200, blank=True, help_text="Where the grant comes from.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = AllocationQuerySet.as_manager()

    class Meta:
        ordering = ["experiment__name", "-start"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gte=models.F("start")), name="allocation_end_after_start"
            ),
            models.UniqueConstraint(fields=["experiment", "start"], name="allocation_once"),
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}: {self.cpu_hours} h {self.start}..{self.end}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.start and self.end and self.end < self.start:
            raise ValidationError({"end": "The period must end on or after its first day."})
        if self.experiment_id and self.start and self.end:
            overlapping = (
                Allocation.objects.filter(
                    experiment_id=self.experiment_id, start__lte=self.end, end__gte=self.start
                )
                .exclude(pk=self.pk)
                .first()
            )
            if overlapping is not None:
                raise ValidationError(
                    f"The period overlaps the allocation {overlapping.start} to "
                    f"{overlapping.end} of this experiment."
                )

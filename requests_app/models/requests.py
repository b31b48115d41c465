"""Production requests, their samples, comments and the record of their transitions."""

from django.conf import settings
from django.core.validators import MaxLengthValidator, MinValueValidator
from django.db import models

from experiments.models.experiments import Experiment, PhysicsGroup
from experiments.models.templates import WorkflowTemplate
from experiments.models.visibility import VisibleQuerySet

from ..choices import Priority, RequestState


class RequestCounter(models.Model):
    """Last request number handed out per experiment and year (``DUNE-2026-0042``).

    Per experiment, so that one experiment's numbers say nothing about another's volume.
    Numbers handed out before (``REQ-2026-0042``, one sequence for all) stay as they were.
    """

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+")
    year = models.PositiveSmallIntegerField()
    last = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "year"], name="one_counter_per_year")
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}/{self.year}: {self.last}"


class ProductionRequestQuerySet(VisibleQuerySet):
    experiment_path = "experiment"


class ProductionRequest(models.Model):
    """A service-desk ticket's production request: what to produce, by when, for whom.

    ``state`` changes only through ``requests_app.services`` (checked against
    ``requests_app.workflow.ACTIONS``, recorded as a ``Transition``).
    """

    number = models.CharField(max_length=64, unique=True, editable=False)
    # Ticket, group, title and deadline may be missing from a draft (saved with any subset
    # of its fields); submitting requires them (services.transitions).
    ticket = models.CharField("service-desk ticket", max_length=40, db_index=True, blank=True)
    experiment = models.ForeignKey(Experiment, on_delete=models.PROTECT, related_name="requests")
    physics_group = models.ForeignKey(
        PhysicsGroup, on_delete=models.PROTECT, related_name="requests", null=True, blank=True
    )
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="requests_filed"
    )
    title = models.CharField(max_length=200, blank=True)
    description = models.TextField("justification", blank=True)
    deadline = models.DateField(null=True, blank=True)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    state = models.CharField(
        max_length=16, choices=RequestState.choices, default=RequestState.DRAFT, db_index=True
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="requests_assigned",
    )
    watchers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="requests_watched"
    )
    # Hold bookkeeping: where to resume to, since when, and the total so far.
    held_from = models.CharField(max_length=16, choices=RequestState.choices, blank=True)
    hold_started = models.DateTimeField(null=True, blank=True)
    hold_reason = models.CharField(max_length=500, blank=True)
    hold_seconds = models.PositiveBigIntegerField(default=0)
    # Optimistic lock: every write bumps it, so two concurrent decisions can't both win.
    version = models.PositiveIntegerField(default=0)
    submitted = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = ProductionRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["state", "deadline"], name="request_state_deadline"),
            models.Index(fields=["experiment", "state"], name="request_experiment_state"),
            # The request list (browser and API) shows the newest first, a page at a time:
            # without this the database joins and sorts every visible request per page.
            models.Index(fields=["-created", "-id"], name="request_newest_first"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=RequestState.values), name="request_state_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(priority__in=Priority.values), name="request_priority_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.title}"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("requests:detail", args=[self.number])

    @property
    def events_total(self) -> int:
        return sum(sample.events for sample in self.samples.all())


class SampleQuerySet(VisibleQuerySet):
    experiment_path = "request__experiment"


class Sample(models.Model):
    """One line of a request: a sample to produce with one workflow template."""

    request = models.ForeignKey(ProductionRequest, on_delete=models.CASCADE, related_name="samples")
    name = models.CharField(max_length=120)
    template = models.ForeignKey(WorkflowTemplate, on_delete=models.PROTECT, related_name="samples")
    events = models.PositiveBigIntegerField(validators=[MinValueValidator(1)])
    events_per_job = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    parameters = models.JSONField(default=dict, blank=True)
    input_dataset = models.CharField(max_length=255, blank=True)
    output_dataset = models.CharField(max_length=255)

    objects = SampleQuerySet.as_manager()

    class Meta:
        ordering = ["request", "id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "name"], name="sample_name_per_request"),
            models.CheckConstraint(condition=models.Q(events__gt=0), name="sample_events_positive"),
            models.CheckConstraint(
                condition=models.Q(events_per_job__gt=0)
                & models.Q(events_per_job__lte=models.F("events")),
                name="sample_events_per_job_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.request.number}/{self.name}"


class TransitionQuerySet(VisibleQuerySet):
    experiment_path = "request__experiment"


class Transition(models.Model):
    """An audited change of a request: a state transition or a recorded field edit.

    Rows are only ever inserted (the admin shows them read-only).
    """

    request = models.ForeignKey(
        ProductionRequest, on_delete=models.CASCADE, related_name="transitions"
    )
    action = models.CharField(max_length=32)
    from_state = models.CharField(max_length=16, choices=RequestState.choices)
    to_state = models.CharField(max_length=16, choices=RequestState.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True, validators=[MaxLengthValidator(5000)])
    changes = models.JSONField(default=dict, blank=True, help_text="Field: [old, new] for edits.")
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = TransitionQuerySet.as_manager()

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"{self.request_id}: {self.action} {self.from_state} -> {self.to_state}"


# Who a note of the tracker itself is from, wherever an author is shown.
SYSTEM_AUTHOR = "OPOS Tracker"


class CommentQuerySet(VisibleQuerySet):
    experiment_path = "request__experiment"


class Comment(models.Model):
    """A message on a request from a liaison of its experiment or an operator.

    ``author`` is empty for the tracker's own notes (work that became blocked or
    stalled): they reach the same people and the service-desk ticket as a comment.
    """

    request = models.ForeignKey(
        ProductionRequest, on_delete=models.CASCADE, related_name="comments"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty for a note of the tracker itself.",
    )
    body = models.TextField(validators=[MaxLengthValidator(10000)])
    created = models.DateTimeField(auto_now_add=True)

    objects = CommentQuerySet.as_manager()

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"comment by {self.author_name} on {self.request_id}"

    @property
    def author_name(self) -> str:
        return self.author.get_username() if self.author_id else SYSTEM_AUTHOR

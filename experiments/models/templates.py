"""Workflow templates: the procedures that samples run, shared across experiments.

They live in the intake app because a request's samples are validated
against them (parameters, events per job) before any execution exists;
execution (``campaigns``) reads them and snapshots them into its plans.
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from .experiments import Experiment, ProductionCode
from .visibility import VisibleQuerySet, experiment_roles, is_operator


class SplitRule(models.TextChoices):
    """How a stage's work is cut into jobs."""

    EVENTS = "events", "Events per job"
    FILES = "files", "Files per job"


class WorkflowTemplateQuerySet(VisibleQuerySet):
    def visible_to(self, user):
        """Shared templates are visible to everyone signed in; others follow the experiment."""
        if not user.is_authenticated:
            return self.none()
        if is_operator(user):
            return self
        return self.filter(
            models.Q(experiment__isnull=True)
            | models.Q(experiment_id__in=list(experiment_roles(user)))
        )


class WorkflowTemplate(models.Model):
    """An ordered list of stages (generation -> simulation -> reconstruction)."""

    experiment = models.ForeignKey(
        Experiment,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="templates",
        help_text="Empty for a template shared by all experiments.",
    )
    name = models.CharField(max_length=120)
    version = models.PositiveIntegerField(default=1)
    description = models.TextField(blank=True)
    cloned_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="clones"
    )
    # The default share of a request's final jobs that must be done before an operator may
    # force-complete it (a campaign may set its own). Database default: older workers insert
    # templates without the column.
    completion_pct = models.PositiveSmallIntegerField(
        default=95,
        db_default=95,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Force-complete threshold in percent (a campaign may override it).",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = WorkflowTemplateQuerySet.as_manager()

    class Meta:
        # Moved from requests_app by a state-only migration: the table kept its name.
        db_table = "requests_app_workflowtemplate"
        ordering = ["name", "version"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "name", "version"],
                condition=models.Q(experiment__isnull=False),
                name="template_version_once",
            ),
            # NULL never equals NULL in a unique index: shared templates need their own.
            models.UniqueConstraint(
                fields=["name", "version"],
                condition=models.Q(experiment__isnull=True),
                name="shared_template_version_once",
            ),
        ]

    def __str__(self) -> str:
        owner = self.experiment.slug if self.experiment_id else "shared"
        return f"{self.name} v{self.version} ({owner})"

    def parameter_specs(self) -> dict[str, dict]:
        """The union of the stages' parameter specifications, by name."""
        specs: dict[str, dict] = {}
        for stage in self.stages.all():
            specs.update(stage.parameters or {})
        return specs


class StageTemplate(models.Model):
    """One step of a workflow: which registered code runs, with what and how it splits.

    ``parameters`` maps a name to its specification: ``{"type": "int" | "float"
    | "str" | "bool", "default": ..., "choices": [...], "min": ..., "max": ...}``.
    """

    template = models.ForeignKey(WorkflowTemplate, on_delete=models.CASCADE, related_name="stages")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=60)
    code = models.ForeignKey(ProductionCode, on_delete=models.PROTECT, related_name="stages")
    parameters = models.JSONField(default=dict, blank=True)
    cores = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    memory_mb = models.PositiveIntegerField(default=2000, validators=[MinValueValidator(1)])
    walltime_s = models.PositiveIntegerField(
        default=3600, validators=[MinValueValidator(1)], help_text="Estimated walltime per job."
    )
    split = models.CharField(max_length=8, choices=SplitRule.choices, default=SplitRule.EVENTS)
    files_per_job = models.PositiveIntegerField(null=True, blank=True)
    input_stage = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The stage whose output this one reads (none for generation).",
    )

    class Meta:
        # Moved from requests_app by a state-only migration: the table kept its name.
        db_table = "requests_app_stagetemplate"
        ordering = ["template", "position"]
        constraints = [
            models.UniqueConstraint(fields=["template", "position"], name="stage_position_once"),
            models.UniqueConstraint(fields=["template", "name"], name="stage_name_once"),
        ]

    def __str__(self) -> str:
        return f"{self.template.name}:{self.position}:{self.name}"

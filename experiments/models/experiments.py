"""Experiments, their people and what qualifies them under the SLA."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from ..choices import CodeKind, ExperimentRole, GlobalRoleName, TrainingTopic
from ..endpoints import NAME_MAX_LENGTH, label, validate_endpoint
from .visibility import VisibleQuerySet

sha256_validator = RegexValidator(r"^[0-9a-f]{64}$", "A sha256 is 64 lowercase hex digits.")
slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,48}$", "Use lowercase letters, digits and dashes (at most 49)."
)
# A Slurm partition, account or QOS, an HTCondor accounting group: a name safe to pass on a
# command line (the batch backends check it again).
batch_name_validator = RegexValidator(
    r"^[A-Za-z0-9_.@+-]{1,200}$", "Letters, digits and _ . @ + - only (a batch system name)."
)
batch_names_validator = RegexValidator(
    r"^([A-Za-z0-9_.@+-]{1,200}(\s*,\s*[A-Za-z0-9_.@+-]{1,200})*)?$",
    "Partition names separated by commas.",
)
requirements_validator = RegexValidator(
    r"^[^\n\r\0]*$", "One line: an HTCondor ClassAd expression."
)


def split_names(value: str) -> list[str]:
    """``"a, b"`` -> ``["a", "b"]`` (the partitions to avoid are stored as one line)."""
    return [name.strip() for name in (value or "").split(",") if name.strip()]


class BatchPlacement(models.Model):
    """Where the work runs at the batch system; empty fields mean the site's default.

    The same fields on an experiment and, as overrides, on a campaign.
    """

    batch_partition = models.CharField(
        "Slurm partition",
        max_length=200,
        blank=True,
        default="",
        db_default="",
        validators=[batch_name_validator],
    )
    batch_account = models.CharField(
        "batch account",
        max_length=200,
        blank=True,
        default="",
        db_default="",
        validators=[batch_name_validator],
        help_text="Slurm account; HTCondor accounting group.",
    )
    batch_qos = models.CharField(
        "Slurm QOS",
        max_length=200,
        blank=True,
        default="",
        db_default="",
        validators=[batch_name_validator],
    )
    batch_requirements = models.CharField(
        "HTCondor requirements",
        max_length=1000,
        blank=True,
        default="",
        db_default="",
        validators=[requirements_validator],
        help_text="A ClassAd expression the execute machines must match.",
    )

    class Meta:
        abstract = True


def configured_default_backend() -> str:
    """The batch backend a new experiment starts with: ``OPOS_DEFAULT_BACKEND``."""
    return settings.OPOS_DEFAULT_BACKEND


class ExperimentQuerySet(VisibleQuerySet):
    experiment_path = "id"


class Experiment(BatchPlacement):
    """A collaboration that hands production to OPOS under the service level agreement."""

    slug = models.SlugField(max_length=49, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    sla_accepted_on = models.DateField(
        null=True, blank=True, help_text="When the experiment accepted the SLA."
    )
    sla_reference = models.CharField(
        max_length=200, blank=True, help_text="Document reference of the signed SLA."
    )
    default_backend = models.CharField(
        max_length=NAME_MAX_LENGTH,
        # Endpoint names come from the settings (experiments/endpoints.py), so the valid
        # values are checked by a validator, not fixed in the schema as choices.
        validators=[validate_endpoint],
        default=configured_default_backend,
        help_text="The batch endpoint its campaigns' jobs run on unless a campaign says "
        "otherwise; new experiments start with the service's OPOS_DEFAULT_BACKEND.",
    )
    job_quota = models.PositiveIntegerField(
        default=500, help_text="Maximum jobs of this experiment in flight at once."
    )
    # The service-desk side of the SLA: how long a ticket may wait (hours), per experiment.
    sla_response_hours = models.PositiveIntegerField(
        default=24,
        db_default=24,
        help_text="SLA target: hours from a submitted ticket to the first operator response.",
    )
    sla_approval_hours = models.PositiveIntegerField(
        default=120,
        db_default=120,
        help_text="SLA target: hours from a submitted ticket to its approval.",
    )
    sla_first_job_hours = models.PositiveIntegerField(
        default=168,
        db_default=168,
        help_text="SLA target: hours from a submitted ticket to its first job running.",
    )
    batch_avoid_partitions = models.CharField(
        "partitions to avoid",
        max_length=1000,
        blank=True,
        default="",
        db_default="",
        validators=[batch_names_validator],
        help_text="Slurm partitions this experiment's work must never run in, separated by commas.",
    )
    created = models.DateTimeField(auto_now_add=True)

    objects = ExperimentQuerySet.as_manager()

    class Meta:
        # Moved from requests_app by a state-only migration: the table kept its name.
        db_table = "requests_app_experiment"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def default_backend_label(self) -> str:
        """The default endpoint as pages show it: "Slurm", "slurm-b (Slurm)"."""
        return label(self.default_backend)

    def clean(self) -> None:
        super().clean()
        if self.batch_partition and self.batch_partition in self.avoided_partitions:
            raise ValidationError(
                {
                    "batch_avoid_partitions": f"{self.batch_partition!r} is the experiment's own "
                    "partition: it cannot also be one to avoid."
                }
            )

    @property
    def avoided_partitions(self) -> list[str]:
        return split_names(self.batch_avoid_partitions)

    @property
    def sla_accepted(self) -> bool:
        return self.sla_accepted_on is not None and bool(self.sla_reference)


class PhysicsGroup(models.Model):
    """A physics working group of an experiment (oscillations, supernova, ...)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="groups")
    slug = models.SlugField(max_length=49, validators=[slug_validator])
    name = models.CharField(max_length=200)

    class Meta:
        # Moved from requests_app by a state-only migration: the table kept its name.
        db_table = "requests_app_physicsgroup"
        ordering = ["experiment__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "slug"], name="group_slug_per_experiment")
        ]

    def __str__(self) -> str:
        return f"{self.experiment.slug}/{self.name}"


class Membership(models.Model):
    """A user's role in one experiment: liaison (files requests) or physicist (watches)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="members")
    role = models.CharField(max_length=16, choices=ExperimentRole.choices)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Moved from requests_app by a state-only migration: the table kept its name.
        db_table = "requests_app_membership"
        ordering = ["experiment__name", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user", "experiment"], name="one_role_per_experiment"),
            models.CheckConstraint(
                condition=models.Q(role__in=ExperimentRole.values), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.experiment.slug}"


class GlobalRole(models.Model):
    """A role over all experiments: operator (OPOS team) or admin."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="global_roles"
    )
    role = models.CharField(max_length=16, choices=GlobalRoleName.choices)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Moved from requests_app by a state-only migration: the table kept its name.
        db_table = "requests_app_globalrole"
        constraints = [
            models.UniqueConstraint(fields=["user", "role"], name="global_role_once"),
            models.CheckConstraint(
                condition=models.Q(role__in=GlobalRoleName.values), name="global_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role}"


class TrainingRecordQuerySet(VisibleQuerySet):
    experiment_path = "experiment"


class TrainingRecord(models.Model):
    """A session in which the experiment trained the operators on its production."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="trainings")
    held_on = models.DateField()
    topics = models.JSONField(
        default=list, help_text=f"Subset of {', '.join(TrainingTopic.values)}."
    )
    attendees = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="trainings_attended", blank=True
    )
    notes = models.TextField(blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    objects = TrainingRecordQuerySet.as_manager()

    class Meta:
        # Moved from requests_app by a state-only migration: the table kept its name.
        db_table = "requests_app_trainingrecord"
        ordering = ["-held_on"]

    def __str__(self) -> str:
        return f"{self.experiment.slug} training on {self.held_on}: {', '.join(self.topics)}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        unknown = set(self.topics or []) - set(TrainingTopic.values)
        if unknown or not self.topics:
            raise ValidationError(
                {"topics": f"Choose one or more of {', '.join(TrainingTopic.values)}."}
            )


class ProductionCodeQuerySet(VisibleQuerySet):
    experiment_path = "experiment"


class ProductionCode(models.Model):
    """A registered production script or configuration, pinned by its checksum.

    Only approved versions, owned only by accounts authorised for the
    experiment (its liaisons), may run: the SLA requires that production code
    is controlled by authorised people.
    """

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="codes")
    name = models.CharField(max_length=120)
    version = models.CharField(max_length=60)
    kind = models.CharField(max_length=16, choices=CodeKind.choices, default=CodeKind.SCRIPT)
    location = models.CharField(max_length=500, help_text="Path or URL of the file.")
    sha256 = models.CharField(max_length=64, blank=True, validators=[sha256_validator])
    owners = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="owned_code")
    approved = models.BooleanField(default=False)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    objects = ProductionCodeQuerySet.as_manager()

    class Meta:
        # Moved from requests_app by a state-only migration: the table kept its name.
        db_table = "requests_app_productioncode"
        ordering = ["experiment__name", "name", "version"]
        verbose_name = "production code"
        verbose_name_plural = "production code"
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "name", "version"], name="code_version_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

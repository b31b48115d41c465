"""Choice sets of experiments, roles, batch systems and the SLA records."""

from django.db import models


class GlobalRoleName(models.TextChoices):
    """Roles that span every experiment."""

    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Administrator"


class ExperimentRole(models.TextChoices):
    """Roles a user holds within one experiment."""

    LIAISON = "liaison", "Liaison"
    PHYSICIST = "physicist", "Physicist"


ALL_ROLES = [*GlobalRoleName.values, *ExperimentRole.values]


class BackendName(models.TextChoices):
    """Batch systems a request's jobs can run on."""

    LOCAL = "local", "Local processes"
    SLURM = "slurm", "Slurm"
    HTCONDOR = "htcondor", "HTCondor"


class TrainingTopic(models.TextChoices):
    """What the experiment trained the operators on."""

    SUBMISSION = "submission", "Job submission"
    MONITORING = "monitoring", "Monitoring"
    DATA_HANDLING = "data_handling", "Data handling"


class CodeKind(models.TextChoices):
    SCRIPT = "script", "Script"
    CONFIG = "config", "Configuration"

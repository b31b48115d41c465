"""Choice sets of the intake domain, with their named groups."""

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


class Priority(models.TextChoices):
    """Request priority; ``weight`` orders the triage queue."""

    LOW = "low", "Low"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


PRIORITY_WEIGHT = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.CRITICAL: 3}


class RequestState(models.TextChoices):
    """Life cycle of a production request (see ``requests_app.workflow``)."""

    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    NEEDS_INFO = "needs_info", "Needs information"
    APPROVED = "approved", "Approved"
    SCHEDULED = "scheduled", "Scheduled"
    IN_PRODUCTION = "in_production", "In production"
    ON_HOLD = "on_hold", "On hold"
    COMPLETED = "completed", "Completed"
    CLOSED = "closed", "Closed"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


# States in which a liaison may still edit the request freely.
EDITABLE_STATES = frozenset({RequestState.DRAFT, RequestState.NEEDS_INFO})
# States that end the request's life.
TERMINAL_STATES = frozenset({RequestState.CLOSED, RequestState.REJECTED, RequestState.CANCELLED})
# States whose jobs are not submitted nor retried: a blocker is being solved, the request
# was dropped, or it was completed with the rest abandoned (force-complete).
WORK_HELD_STATES = frozenset(
    {RequestState.ON_HOLD, RequestState.CANCELLED, RequestState.COMPLETED, RequestState.CLOSED}
)
# States whose work is done and delivered: complete, or complete and closed.
DELIVERED_STATES = frozenset({RequestState.COMPLETED, RequestState.CLOSED})
# States whose work will never run: dropped by the experiment or refused by an operator.
DROPPED_STATES = frozenset({RequestState.CANCELLED, RequestState.REJECTED})
# States of a request that asked for work but is in no campaign yet.
UNSCHEDULED_STATES = frozenset(
    {RequestState.SUBMITTED, RequestState.NEEDS_INFO, RequestState.APPROVED}
)
# States waiting for an operator's decision (the triage queue).
AWAITING_OPERATOR = frozenset({RequestState.SUBMITTED})
# States in which work is, or is about to be, under way.
ACTIVE_STATES = frozenset(
    {
        RequestState.APPROVED,
        RequestState.SCHEDULED,
        RequestState.IN_PRODUCTION,
        RequestState.ON_HOLD,
    }
)

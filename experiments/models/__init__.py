"""Experiments' models, split by topic; import from ``experiments.models``."""

from .audit import AuditEvent
from .experiments import (
    Experiment,
    GlobalRole,
    Membership,
    PhysicsGroup,
    ProductionCode,
    TrainingRecord,
)
from .templates import SplitRule, StageTemplate, WorkflowTemplate

__all__ = [
    "AuditEvent",
    "Experiment",
    "GlobalRole",
    "Membership",
    "PhysicsGroup",
    "ProductionCode",
    "SplitRule",
    "StageTemplate",
    "TrainingRecord",
    "WorkflowTemplate",
]

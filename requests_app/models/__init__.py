"""Intake models, split by topic; import from ``requests_app.models``."""

from .audit import AuditEvent
from .experiments import (
    Experiment,
    GlobalRole,
    Membership,
    PhysicsGroup,
    ProductionCode,
    TrainingRecord,
)
from .preferences import SavedFilter, UserPreference
from .requests import Comment, ProductionRequest, RequestCounter, Sample, Transition
from .templates import SplitRule, StageTemplate, WorkflowTemplate

__all__ = [
    "AuditEvent",
    "Comment",
    "Experiment",
    "GlobalRole",
    "Membership",
    "PhysicsGroup",
    "ProductionCode",
    "ProductionRequest",
    "RequestCounter",
    "Sample",
    "SavedFilter",
    "SplitRule",
    "StageTemplate",
    "TrainingRecord",
    "Transition",
    "UserPreference",
    "WorkflowTemplate",
]

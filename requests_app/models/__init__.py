"""Intake models, split by topic; import from ``requests_app.models``."""

from .preferences import SavedFilter, UserPreference
from .requests import Comment, ProductionRequest, RequestCounter, Sample, Transition

__all__ = [
    "Comment",
    "ProductionRequest",
    "RequestCounter",
    "Sample",
    "SavedFilter",
    "Transition",
    "UserPreference",
]

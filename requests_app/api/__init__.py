"""REST API of the intake app: tokens, experiments, production requests."""

from experiments.api.audit import AuditEventViewSet
from experiments.api.records import ProductionCodeViewSet, TrainingRecordViewSet

from .auth import ObtainTokenView
from .experiments import ExperimentViewSet
from .requests import ProductionRequestViewSet


def register(router) -> None:
    """Add this app's viewsets to the project router."""
    router.register("experiments", ExperimentViewSet, basename="experiment")
    router.register("requests", ProductionRequestViewSet, basename="request")
    router.register("audit", AuditEventViewSet, basename="audit-event")
    router.register("code", ProductionCodeViewSet, basename="code")
    router.register("training", TrainingRecordViewSet, basename="training")


__all__ = ["ObtainTokenView", "register"]

"""REST API of the intake app: tokens, experiments, production requests."""

from .auth import ObtainTokenView
from .experiments import ExperimentViewSet
from .requests import ProductionRequestViewSet


def register(router) -> None:
    """Add this app's viewsets to the project router."""
    router.register("experiments", ExperimentViewSet, basename="experiment")
    router.register("requests", ProductionRequestViewSet, basename="request")


__all__ = ["ObtainTokenView", "register"]

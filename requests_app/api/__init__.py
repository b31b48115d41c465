"""REST API of the intake app: tokens, experiments (and requests, in later modules)."""

from .auth import ObtainTokenView
from .experiments import ExperimentViewSet


def register(router) -> None:
    """Add this app's viewsets to the project router."""
    router.register("experiments", ExperimentViewSet, basename="experiment")


__all__ = ["ObtainTokenView", "register"]

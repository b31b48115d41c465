"""REST API of the execution side: campaigns and their plans, workflow templates."""

from .execution import register as register_execution
from .steering import register as register_steering
from .views import CampaignViewSet, WorkflowTemplateViewSet


def register(router) -> None:
    """Add this app's viewsets to the project router."""
    router.register("campaigns", CampaignViewSet, basename="campaign")
    router.register("templates", WorkflowTemplateViewSet, basename="template")
    register_execution(router)  # jobs, submissions, datasets, stuck, failure-rules
    register_steering(router)  # recover, force-complete, launch-full, clone, extensions


__all__ = ["register"]

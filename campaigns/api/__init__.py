"""REST API of the execution side: campaigns and their plans, workflow templates."""

from .catalogue import DatasetViewSet
from .execution import register as register_execution
from .partitions import PartitionViewSet
from .steering import register as register_steering
from .templates import WorkflowTemplateViewSet
from .views import CampaignViewSet


def register(router) -> None:
    """Add this app's viewsets to the project router."""
    router.register("campaigns", CampaignViewSet, basename="campaign")
    router.register("templates", WorkflowTemplateViewSet, basename="template")
    register_execution(router)  # jobs, submissions, stuck, failure-rules
    router.register("datasets", DatasetViewSet, basename="dataset")
    register_steering(router)  # recover, force-complete, launch-full, clone, extensions
    router.register("partitions", PartitionViewSet, basename="partition")


__all__ = ["register"]

from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    """Execution: campaigns, stages, submissions, jobs, scheduler, batch backends."""

    name = "campaigns"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Workers and beat record their heartbeats (campaigns.execution.heartbeat).
        from .execution.heartbeat import connect

        connect()
        # Intake's changes that reach jobs queued at the batch system.
        from requests_app import events

        from .services import controls

        events.request_priority_changed.connect(
            controls.request_priority_receiver, dispatch_uid="controls-request-priority"
        )
        events.experiment_placement_changed.connect(
            controls.experiment_placement_receiver, dispatch_uid="controls-experiment-placement"
        )

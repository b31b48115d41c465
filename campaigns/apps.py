from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    """Execution: campaigns, stages, submissions, jobs, scheduler, batch backends."""

    name = "campaigns"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from experiments import events as experiment_events
        from requests_app import events
        from requests_app.extensions import add_home_section

        from . import checks  # noqa: F401 - registers the configuration checks
        from .execution.heartbeat import connect
        from .services import controls
        from .services.waiting import blocked_campaigns

        # Workers and beat record their heartbeats (campaigns.execution.heartbeat).
        connect()
        # The operator's home lists the blocked campaigns among what waits for them.
        add_home_section(blocked_campaigns)
        # Intake's changes that reach jobs queued at the batch system.
        events.request_priority_changed.connect(
            controls.request_priority_receiver, dispatch_uid="controls-request-priority"
        )
        experiment_events.experiment_placement_changed.connect(
            controls.experiment_placement_receiver, dispatch_uid="controls-experiment-placement"
        )

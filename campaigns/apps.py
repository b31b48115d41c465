from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    """Execution: campaigns, stages, submissions, jobs, scheduler, batch backends."""

    name = "campaigns"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Workers and beat record their heartbeats (campaigns.execution.heartbeat).
        from requests_app.extensions import add_home_section, provide_request_forecast

        from . import checks  # noqa: F401 - registers the configuration checks
        from .execution.heartbeat import connect
        from .services import forecast_request
        from .services.waiting import blocked_campaigns

        connect()
        # The request page's "would finish around D" (intake may not import execution).
        provide_request_forecast(forecast_request)
        # The operator's home lists the blocked campaigns among what waits for them.
        add_home_section(blocked_campaigns)

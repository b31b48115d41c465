from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Read side: progress, snapshots, forecasts, dashboards, reports, metrics."""

    name = "monitoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Count Celery task runs for /metrics (see monitoring.instrumentation).
        from campaigns.extensions import provide_decision_effect
        from campaigns.services import forecast_request
        from requests_app.extensions import (
            provide_approval_effect,
            provide_request_forecast,
            provide_request_promises,
        )

        from .instrumentation import connect
        from .services.commitments import for_request_page
        from .whatif_api import approval_effect, decision_effect

        connect()
        # The request page's commitments and service-desk clock (intake may not import
        # the read side).
        provide_request_promises(for_request_page)
        # The request page's "would finish around D": what the read side shows of a request
        # is handed down from here, the scheduler's projection of the live state.
        provide_request_forecast(forecast_request)
        # What a decision does to everyone else, computed at the decision when nobody was
        # shown it first (the API, the CLI): the what-if page's projection, handed down.
        provide_approval_effect(approval_effect)
        provide_decision_effect(decision_effect)

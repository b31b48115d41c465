from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Read side: progress, snapshots, forecasts, dashboards, reports, metrics."""

    name = "monitoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Count Celery task runs for /metrics (see monitoring.instrumentation).
        from requests_app.extensions import provide_request_promises

        from .instrumentation import connect
        from .services.commitments import for_request_page

        connect()
        # The request page's commitments and service-desk clock (intake may not import
        # the read side).
        provide_request_promises(for_request_page)

from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Read side: progress, snapshots, forecasts, dashboards, reports, metrics."""

    name = "monitoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Count Celery task runs for /metrics (see monitoring.instrumentation).
        from .instrumentation import connect

        connect()

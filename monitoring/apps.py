from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Read side: progress, snapshots, forecasts, dashboards, reports, metrics."""

    name = "monitoring"
    default_auto_field = "django.db.models.BigAutoField"

from django.apps import AppConfig


class ServiceDeskConfig(AppConfig):
    """Service desk (ServiceNow): pull tickets into drafts, push transitions as work notes."""

    name = "servicedesk"
    verbose_name = "Service desk"
    default_auto_field = "django.db.models.BigAutoField"

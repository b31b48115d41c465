from django.apps import AppConfig


class RequestsAppConfig(AppConfig):
    """Intake: experiments, roles, SLA eligibility, production code, requests."""

    name = "requests_app"
    verbose_name = "Production requests"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import middleware, signals  # noqa: F401 - connects the handlers

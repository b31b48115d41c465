from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    """The floor of the domain: experiments, roles, SLA records, templates, audit."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "experiments"
    verbose_name = "Experiments"

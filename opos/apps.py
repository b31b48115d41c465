from django.apps import AppConfig, apps


class OposConfig(AppConfig):
    """The roof: settings, URLs, the API router and what spans the apps."""

    name = "opos"
    verbose_name = "OPOS Tracker"

    def ready(self) -> None:
        from common import pagecache
        from experiments import viewers

        pagecache.watch_writes(page_data_tables())
        pagecache.watch_writes(viewers.people_tables(), key=viewers.PEOPLE_VERSION_KEY)


# Apps whose tables the cached pages show, and the models of theirs that no cached page
# shows and that are written far more often than the data (a bump for each would empty
# the cache for nothing): liveness, statistics of the tasks, preferences and records
# read on pages of their own.
PAGE_DATA_APPS = ("experiments", "requests_app", "campaigns", "monitoring")
NOT_PAGE_DATA = {
    "campaigns.WorkerHeartbeat",
    "monitoring.TaskStat",
    "monitoring.DigestPreference",
    "monitoring.StatusReport",
    "experiments.AuditEvent",
}


def page_data_tables() -> set[str]:
    """The tables whose every committed write bumps the page cache's data version."""
    return {
        model._meta.db_table
        for label in PAGE_DATA_APPS
        for model in apps.get_app_config(label).get_models(include_auto_created=True)
        if model._meta.label not in NOT_PAGE_DATA
    }

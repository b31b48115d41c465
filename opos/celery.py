"""The Celery application: configuration comes from Django settings (``CELERY_*``)."""

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opos.settings")

app = Celery("opos")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Celery's Django fixup closes every database connection before and after each task
# unless ``CELERY_DB_REUSE_MAX`` is set, so ``CONN_MAX_AGE`` had no effect in a worker: a
# poll every few seconds opened a new PostgreSQL session each time. With the setting
# (opos/settings.py) the fixup closes them only every that many tasks; between tasks
# Django's own rule applies instead, as around a web request: a connection that is
# broken, left in a transaction, or older than ``CONN_MAX_AGE`` is closed, and the next
# query opens a fresh one (with ``CONN_HEALTH_CHECKS``).


def _close_old_connections(task: Any = None, **_: Any) -> None:
    # Eager tasks run inside the caller's transaction (tests, CELERY_TASK_ALWAYS_EAGER):
    # closing "obsolete" connections there would close the caller's.
    if task is not None and getattr(task.request, "is_eager", False):
        return
    close_old_connections()


task_prerun.connect(_close_old_connections, weak=False)
task_postrun.connect(_close_old_connections, weak=False)

"""The Celery tasks: thin, registered, late-acknowledged, time-limited, retried only on named
transient errors; beat entries expire just under their interval."""

import pytest
from django.conf import settings
from django.db import OperationalError

from campaigns import tasks
from campaigns.batch import BackendUnavailable
from opos.celery import app

NAMES = [
    "campaigns.submit_ready",
    "campaigns.poll",
    "campaigns.finalize",
    "campaigns.recover",
    "campaigns.detect_stuck",
    "campaigns.purge_workdirs",
]


@pytest.mark.parametrize("name", NAMES)
def test_task_options(name):
    task = app.tasks[name]
    assert task.acks_late is True
    assert 0 < task.soft_time_limit < task.time_limit <= 600
    assert set(task.autoretry_for) == {BackendUnavailable, OperationalError}
    assert task.retry_jitter is True and task.retry_backoff


def test_beat_entries_expire_before_the_next_run():
    entries = {e["task"]: e for e in settings.CELERY_BEAT_SCHEDULE.values()}
    assert set(NAMES) <= set(entries)
    for name in NAMES:
        entry = entries[name]
        assert 0 < entry["options"]["expires"] < entry["schedule"]


@pytest.mark.django_db
def test_tasks_run_their_service_and_return_json(exec_env):
    for task in (
        tasks.submit_ready,
        tasks.poll,
        tasks.finalize_finished,
        tasks.recover,
        tasks.detect_stuck,
        tasks.purge_workdirs,
    ):
        result = task.apply()
        assert result.successful(), result.traceback
        assert isinstance(result.result, dict)

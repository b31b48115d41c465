"""Counting Celery task runs for /metrics: through the task signals, never in the way."""

from types import SimpleNamespace

import pytest

from monitoring import instrumentation
from monitoring.models import TaskStat

pytestmark = pytest.mark.django_db


def task(name="campaigns.poll", eager=False):
    return SimpleNamespace(name=name, request=SimpleNamespace(is_eager=eager))


def test_a_run_is_counted_with_its_duration_and_result():
    t = task()
    instrumentation.on_prerun(task_id="a", task=t)
    instrumentation.on_postrun(
        task_id="a", task=t, retval={"polled": 5, "moved": 2}, state="SUCCESS"
    )
    instrumentation.on_prerun(task_id="b", task=t)
    instrumentation.on_postrun(task_id="b", task=t, retval=None, state="FAILURE")
    instrumentation.on_prerun(task_id="c", task=t)
    instrumentation.on_postrun(task_id="c", task=t, retval=None, state="RETRY")
    stat = TaskStat.objects.get(name="campaigns.poll")
    assert (stat.runs, stat.failures, stat.retries) == (3, 1, 1)
    assert stat.results == {"polled": 5, "moved": 2}
    assert stat.last_duration_s is not None and stat.duration_sum_s >= stat.last_duration_s
    assert stat.last_success_at is not None and stat.last_failure_at is not None


def test_eager_runs_are_not_counted():
    t = task(eager=True)
    instrumentation.on_prerun(task_id="e", task=t)
    instrumentation.on_postrun(task_id="e", task=t, retval={}, state="SUCCESS")
    assert not TaskStat.objects.exists()


def test_a_broken_counter_never_fails_the_task(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(instrumentation, "record", boom)
    t = task()
    instrumentation.on_prerun(task_id="x", task=t)
    instrumentation.on_postrun(task_id="x", task=t, retval={}, state="SUCCESS")  # no raise


def test_the_beat_tasks_call_their_services():
    from monitoring import tasks

    assert tasks.record_snapshots_task() == {"campaigns": 0, "rows": 0, "milestones": 0}
    assert tasks.thin_snapshots_task() == {"hourly": 0, "daily": 0, "deleted": 0}
    assert tasks.send_digests_task() == {"sent": 0, "skipped": 0, "failed": 0}


def test_beat_entries_expire_under_their_interval(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE
    for name in ("monitoring-record-snapshots", "monitoring-thin-snapshots"):
        entry = schedule[name]
        assert entry["options"]["expires"] < float(entry["schedule"])
    assert schedule["monitoring-send-digests"]["options"]["expires"] <= 3600

"""``/healthz`` reports the database, the broker and its queue depth, and the workers and
beat by their heartbeats; 503 with the reasons when any of them is down or silent."""

import datetime as dt
import json
import uuid

import pytest
from django.db import connection
from django.utils import timezone
from kombu import Connection

from campaigns.execution import heartbeat
from campaigns.models import ProcessRole, WorkerHeartbeat
from tests.workers import require_redis


def alive(name="celery@node1", role=ProcessRole.WORKER, pid=4242, ago_s=0):
    moment = timezone.now() - dt.timedelta(seconds=ago_s)
    return heartbeat.record_start(name, role, name.split("@")[-1], pid, now=moment)


@pytest.fixture
def fresh(db):
    """A worker and beat that just beat."""
    return alive(), alive("beat@node1", ProcessRole.BEAT, 4343)


@pytest.fixture
def monitor(client, settings):
    """A client of the monitoring system (the /metrics bearer token): sees the processes."""
    settings.OPOS_METRICS_TOKEN = "healthz-test-token"
    client.defaults["HTTP_AUTHORIZATION"] = "Bearer healthz-test-token"
    return client


@pytest.fixture
def broker_dir(settings, tmp_path):
    """The embedded broker in a folder of the test's own."""
    options = dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    for key, sub in (
        ("data_folder_in", "queue"),
        ("data_folder_out", "queue"),
        ("processed_folder", "processed"),
        ("broken_folder", "broken"),
        ("control_folder", "control"),
    ):
        (tmp_path / sub).mkdir(exist_ok=True)
        options[key] = str(tmp_path / sub)
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
    return tmp_path


def test_healthy(monitor, fresh, broker_dir):
    response = monitor.get("/healthz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert body["reasons"] == []
    assert body["database"] == {"ok": True, "detail": connection.vendor}
    assert body["broker"]["ok"] is True
    assert body["broker"]["queue_depth"] == 0
    assert body["workers"]["ok"] is True
    assert [p["name"] for p in body["workers"]["processes"]] == ["celery@node1"]
    assert body["workers"]["processes"][0]["state"] == "alive"
    assert body["beat"]["ok"] is True
    assert body["tasks"]["ok"] is True


def test_queue_depth_of_the_embedded_broker(client, fresh, broker_dir, settings):
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    for _ in range(3):
        (broker_dir / "queue" / f"1_{uuid.uuid4()}.{queue}.msg").write_text(json.dumps({}))
    (broker_dir / "queue" / f"1_{uuid.uuid4()}.other.msg").write_text(json.dumps({}))
    (broker_dir / "queue" / f"1_{uuid.uuid4()}.{queue}.msg.part").write_text("{")
    body = client.get("/healthz").json()
    assert body["broker"]["queue"] == queue
    assert body["broker"]["queue_depth"] == 3


@pytest.mark.redis
def test_queue_depth_on_redis(client, fresh, settings):
    url = require_redis("redis://127.0.0.1:6379/5")
    queue = f"opos-test-{uuid.uuid4().hex[:12]}"
    settings.CELERY_BROKER_URL = url
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    with Connection(url) as conn:
        simple = conn.SimpleQueue(queue)
        try:
            for n in range(2):
                simple.put({"n": n})
            body = client.get("/healthz").json()
            assert body["broker"]["ok"] is True
            assert body["broker"]["queue_depth"] == 2
        finally:
            simple.clear()
            simple.close()


def test_silent_worker_is_503_with_the_reason(monitor, db, broker_dir, settings):
    settings.OPOS_HEALTH_WORKER_SILENT_S = 30
    alive(ago_s=45)
    alive("beat@node1", ProcessRole.BEAT, 4343)
    response = monitor.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["workers"]["ok"] is False
    assert body["workers"]["processes"][0]["state"] == "silent"
    (reason,) = body["reasons"]
    assert reason.startswith("workers: no worker alive: the last one silent; its last heartbeat")
    assert "limit 30 s" in reason
    assert body["beat"]["ok"] is True


def test_no_beat_ever_is_503(client, db, broker_dir):
    alive()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["reasons"] == ["beat: no beat has ever reported a heartbeat"]


def test_stopped_worker_is_503(client, fresh, broker_dir):
    heartbeat.record_stop("celery@node1", 4242)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "stopped" in response.json()["reasons"][0]


def test_one_of_several_workers_alive_is_enough(monitor, fresh, broker_dir):
    alive("celery@node2", pid=5)
    heartbeat.record_stop("celery@node2", 5)
    body = monitor.get("/healthz").json()
    assert body["status"] == "ok"
    states = {p["name"]: p["state"] for p in body["workers"]["processes"]}
    assert states == {"celery@node1": "alive", "celery@node2": "stopped"}


def test_workers_alive_but_no_task_consumed_is_503(client, db, broker_dir, settings):
    settings.OPOS_HEALTH_TASK_SILENT_S = 300
    long_ago = timezone.now() - dt.timedelta(seconds=600)
    alive(ago_s=600)
    heartbeat.record_beat("celery@node1", 4242)  # its thread beats...
    heartbeat.record_task("celery@node1", long_ago, now=long_ago)  # ...but it consumes nothing
    heartbeat.record_beat("celery@node1", 4242)
    alive("beat@node1", ProcessRole.BEAT, 4343)
    response = client.get("/healthz")
    assert response.status_code == 503
    (reason,) = response.json()["reasons"]
    assert reason.startswith("tasks: workers and beat are alive but no worker ran")

    heartbeat.record_task("celery@node1", timezone.now())
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
def test_broker_down_is_503(client, fresh, settings):
    # Nothing listens on port 1: a real refused connection, not a mock.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["broker"]["ok"] is False
    assert body["database"]["ok"] is True
    assert body["reasons"] == [f"broker: {body['broker']['detail']}"]


@pytest.mark.django_db
def test_database_down_is_503(client, monkeypatch, broker_dir):
    def refuse(*args, **kwargs):
        raise connection.Database.OperationalError("connection refused")

    # The cursor is the database boundary; a refused connection surfaces there.
    monkeypatch.setattr(connection, "cursor", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"]["ok"] is False


def test_healthz_needs_no_login(client, db):
    assert client.get("/healthz").status_code in (200, 503)


def test_anyone_gets_the_state_and_reasons_but_no_host_names_or_pids(client, db, broker_dir):
    alive(ago_s=600)
    alive("beat@node1", ProcessRole.BEAT, 4343)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["workers"]["ok"] is False and "processes" not in body["workers"]
    assert "processes" not in body["beat"]
    assert "node1" not in response.content.decode()
    assert "4242" not in response.content.decode()
    assert body["reasons"][0].startswith("workers: no worker alive: the last one silent")


def test_a_signed_in_operator_sees_the_processes(client, fresh, broker_dir, operator):
    client.force_login(operator)
    body = client.get("/healthz").json()
    assert [p["pid"] for p in body["workers"]["processes"]] == [4242]


def test_healthz_runs_a_bounded_number_of_queries(
    client, fresh, broker_dir, django_assert_max_num_queries
):
    for n in range(20):
        alive(f"celery@many{n}", pid=100 + n)
    with django_assert_max_num_queries(4):
        assert client.get("/healthz").status_code == 200


def test_heartbeat_task_records_when_beat_sent_it_and_when_it_ran(db):
    from celery.utils.nodenames import gethostname

    from campaigns import tasks

    # An eager run's node name is the bare host name; a worker's is its node name.
    row = alive(gethostname())
    sent = timezone.now() - dt.timedelta(seconds=3)
    result = tasks.heartbeat.apply(kwargs={"sent_at": sent.isoformat()})
    assert result.result == {"recorded": True}
    row.refresh_from_db()
    assert row.task_sent_at == sent
    assert row.task_ran_at >= sent


def test_beat_stamps_its_heartbeat_task_with_the_send_time():
    body = ((), {}, {})
    heartbeat.stamp_send_time(sender=heartbeat.HEARTBEAT_TASK, body=body)
    assert "sent_at" in body[1]
    other = ((), {}, {})
    heartbeat.stamp_send_time(sender="campaigns.poll", body=other)
    assert other[1] == {}


def test_a_heartbeat_without_its_row_records_the_process_again(db):
    """The database was down when the worker started: its next heartbeat makes the row."""
    started = timezone.now() - dt.timedelta(seconds=20)
    assert heartbeat.record_alive("celery@late", ProcessRole.WORKER, "late", 7, started)
    row = WorkerHeartbeat.objects.get(name="celery@late")
    assert (row.pid, row.started_at) == (7, started)
    # A row another process took over is left to it.
    heartbeat.record_start("celery@late", ProcessRole.WORKER, "late", 8)
    assert not heartbeat.record_alive("celery@late", ProcessRole.WORKER, "late", 7, started)
    assert WorkerHeartbeat.objects.get(name="celery@late").pid == 8

"""The embedded default's broker (opos/broker.py): whole messages only, and a message file
that cannot be read is set aside, not fatal to the worker."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from kombu import Connection

from opos.broker import PART_SUFFIX, is_message_of, queue_depth
from tests.workers import celery_worker, filesystem_client, filesystem_env


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    # A CELERY_BROKER_URL in the environment (CI's Redis) would override the client's broker.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    return tmp_path


def drop_truncated_message(queue_dir, queue: str) -> str:
    """A message file cut off mid-write, named to be read before anything sent later."""
    name = f"0_{uuid.uuid4()}.{queue}.msg"
    whole = json.dumps({"body": "x" * 200, "headers": {}, "properties": {}})
    (queue_dir / name).write_text(whole[: len(whole) // 2])
    return name


# Each test its own queue name: kombu keeps the declared bindings per process (class state),
# so a second test's queue of the same name in a new folder would not be bound again.


def test_put_writes_whole_files_under_the_final_name_only(data_dir):
    client = filesystem_client(data_dir)
    queue_dir = data_dir / "broker" / "queue"
    with Connection(
        "filesystem://",
        transport=client.conf.broker_transport,
        transport_options=client.conf.broker_transport_options,
    ) as conn:
        simple = conn.SimpleQueue("unit")
        simple.put({"n": 1})
        names = os.listdir(queue_dir)
        assert [n for n in names if n.endswith(PART_SUFFIX)] == []
        assert queue_depth(queue_dir, "unit") == 1
        (message_file,) = [n for n in names if is_message_of(n, "unit")]
        json.loads((queue_dir / message_file).read_text())  # whole JSON
        assert simple.get(timeout=1).payload == {"n": 1}
        simple.close()


def test_reader_sets_a_broken_file_aside_and_reads_the_next(data_dir):
    client = filesystem_client(data_dir)
    queue_dir = data_dir / "broker" / "queue"
    with Connection(
        "filesystem://",
        transport=client.conf.broker_transport,
        transport_options=client.conf.broker_transport_options,
    ) as conn:
        simple = conn.SimpleQueue("unit2")
        broken = drop_truncated_message(queue_dir, "unit2")
        # JSON, not a message; named to be read before the message put below
        (queue_dir / f"0_{uuid.uuid4()}.unit2.msg").write_text("[1, 2]")
        simple.put({"n": 2})
        assert simple.get(timeout=1).payload == {"n": 2}
        assert broken in os.listdir(data_dir / "broker" / "broken")
        assert len(os.listdir(data_dir / "broker" / "broken")) == 2
        assert queue_depth(queue_dir, "unit2") == 0
        simple.close()


def test_half_written_message_does_not_kill_a_real_worker(data_dir):
    client = filesystem_client(data_dir)
    queue = f"opos-test-{uuid.uuid4().hex[:12]}"
    queue_dir = data_dir / "broker" / "queue"
    with celery_worker(
        "filesystem://",
        data_dir / "worker.log",
        filesystem_env(data_dir),
        client=client,
        queue=queue,
    ) as worker:
        broken = drop_truncated_message(queue_dir, queue)
        results = [worker.send("opos.ping", f"after-{i}") for i in range(3)]
        assert [r.get(timeout=60) for r in results] == [f"pong:after-{i}" for i in range(3)]
        assert worker.alive(), worker.log_tail()
        assert broken in os.listdir(data_dir / "broker" / "broken")
        assert "skipped message" in worker.log.read_text()
        assert "Unrecoverable error" not in worker.log.read_text()


def test_an_exchange_table_being_written_reads_as_no_bindings(data_dir):
    client = filesystem_client(data_dir)
    with Connection(
        "filesystem://",
        transport=client.conf.broker_transport,
        transport_options=client.conf.broker_transport_options,
    ) as conn:
        (data_dir / "broker" / "control" / "fresh.exchange").write_text("")
        assert conn.default_channel.get_table("fresh") == []

"""``make run`` end to end on the embedded default (SQLite, the filesystem broker): the
Procfile's web, worker and beat under honcho; ``/healthz`` over HTTP shows the worker and
beat alive, and after each is killed with SIGKILL, a new process of it alive again."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "make-run-test-token"
"""The monitoring system's token (as for /metrics): /healthz then lists the processes."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthz(port: int) -> tuple[int, dict]:
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/healthz", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - http, ours
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except (OSError, ValueError):
        return 0, {}


def wait_for(predicate, what: str, log: Path, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while not (value := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen:\n{log.read_text()[-5000:]}")
        time.sleep(0.5)
    return value


def alive(body: dict, role: str) -> list[dict]:
    return [p for p in body.get(role, {}).get("processes", []) if p["state"] == "alive"]


def test_make_run_heals_a_killed_worker_and_beat(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DATABASE_"))}
    env.pop("CACHE_URL", None)
    env.update(
        {
            "OPOS_DATA_DIR": str(tmp_path),
            "OPOS_HEARTBEAT_INTERVAL_S": "1",
            "OPOS_METRICS_TOKEN": TOKEN,
        }
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        (ROOT / "Procfile").read_text().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    )
    log = tmp_path / "honcho.log"
    with log.open("w") as out:
        honcho = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "honcho"), "start", "-f", str(procfile), "-d", str(ROOT)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    killed: list[int] = []
    try:
        # Healthy once beat's heartbeat task has gone through the worker.
        def healthy_with_task():
            status, body = healthz(port)
            workers = alive(body, "workers")
            if status == 200 and workers and workers[0]["task_ran_at"] and alive(body, "beat"):
                return body
            return None

        body = wait_for(healthy_with_task, "a healthy start", log)
        assert isinstance(body["broker"]["queue_depth"], int)

        for role in ("workers", "beat"):
            (before,) = alive(body, role)
            os.kill(before["pid"], signal.SIGKILL)
            killed.append(before["pid"])

            def replaced(role=role, before=before):
                status, body = healthz(port)
                now = alive(body, role)
                if status == 200 and now and now[0]["pid"] != before["pid"]:
                    return body
                return None

            body = wait_for(replaced, f"a new {role} process", log)
            assert body["status"] == "ok"
        assert honcho.poll() is None
        assert log.read_text().count("exited with SIGKILL") == 2
    finally:
        if honcho.poll() is None:
            honcho.send_signal(signal.SIGTERM)
            try:
                honcho.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(honcho.pid, signal.SIGKILL)
                honcho.wait(timeout=10)
        for pid in killed:
            # A killed worker's pool processes, if they outlived it (its own session).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

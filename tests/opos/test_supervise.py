"""``make run`` restarts a worker or beat that exits (opos/supervise.py under honcho)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.workers import filesystem_client, filesystem_env

ROOT = Path(__file__).resolve().parents[2]
STARTED = re.compile(r"(\w+): started pid (\d+) \(start (\d+)\)")


def wait_for(predicate, what: str, log: Path, seconds: float = 90):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


def started(log: Path, name: str) -> list[int]:
    return [int(m[1]) for m in STARTED.findall(log.read_text()) if m[0] == name]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie until its parent (the supervisor) reaps it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_supervisor_restarts_a_child_that_exits_and_stops_on_sigterm(tmp_path):
    marks = tmp_path / "starts"
    child = (
        f"import pathlib, sys; p = pathlib.Path({str(marks)!r}); "
        "p.open('a').write('x'); sys.exit(3)"
    )
    log = tmp_path / "supervise.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "opos.supervise", "--name", "flaky"),
                *("--backoff", "0.1", "--backoff-max", "0.2", "--", sys.executable, "-c", child),
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: marks.exists() and len(marks.read_text()) >= 3, "three starts", log)
        assert proc.poll() is None
        assert "exited with status 3" in log.read_text()
    finally:
        stop(proc)
    assert proc.returncode is not None


def test_child_stops_when_the_supervisor_is_killed(tmp_path):
    pid_file = tmp_path / "child.pid"
    child = (
        f"import os, pathlib, time; pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid())); "
        "time.sleep(300)"
    )
    log = tmp_path / "supervise.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "opos.supervise", "--name", "orphan"),
                *("--", sys.executable, "-c", child),
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), "the child", log))
    try:
        proc.kill()
        proc.wait(timeout=30)
        wait_for(lambda: gone(pid), "the orphaned child's end", log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_worker_killed_under_make_run_comes_back(tmp_path, monkeypatch):
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    # make run's own process manager and the Procfile's own worker line, on the embedded
    # default (filesystem broker, SQLite) in a folder of the test's own.
    lines = (ROOT / "Procfile").read_text().splitlines()
    (worker_line,) = [line for line in lines if line.startswith("worker:")]
    procfile = tmp_path / "Procfile"
    procfile.write_text(worker_line + "\n")
    queue = f"opos-test-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        **filesystem_env(tmp_path),
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
    }
    env.pop("DATABASE_URL", None)
    client = filesystem_client(tmp_path)
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
    first = None
    try:
        wait_for(lambda: "ready." in log.read_text(), "the worker's start", log)
        (first,) = started(log, "worker")
        ping = client.send_task("opos.ping", args=["before"], queue=queue)
        assert ping.get(timeout=60) == "pong:before"

        os.kill(first, signal.SIGKILL)
        wait_for(lambda: gone(first), "the worker's death", log)
        pids = wait_for(lambda: started(log, "worker")[1:], "a new worker", log)
        assert pids[0] != first
        ping = client.send_task("opos.ping", args=["after"], queue=queue)
        assert ping.get(timeout=90) == "pong:after"
        assert honcho.poll() is None, "honcho stopped: " + log.read_text()[-2000:]
        assert "exited with SIGKILL" in log.read_text()
    finally:
        stop(honcho)
        client.close()
        for pid in started(log, "worker"):
            # The killed worker's pool processes, if they outlived it (each its own session).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

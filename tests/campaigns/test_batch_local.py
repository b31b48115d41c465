"""Local backend: real detached processes, state on disk, slot limit, cancel, lost jobs."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from campaigns.batch import (
    ArraySpec,
    BackendError,
    BatchState,
    ControlOutcome,
    JobRef,
    Placement,
    StatusAnswer,
    get_backend,
)
from campaigns.batch.local import LocalBackend

JOB_SCRIPT = """\
import json, os, sys, time
start = time.time()
sleep = float(open("sleep").read()) if os.path.exists("sleep") else 0.0
time.sleep(sleep)
info = {
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "job_dir": os.environ.get("OPOS_JOB_DIR"),
    "index": os.environ.get("OPOS_ARRAY_INDEX"),
    "extra": os.environ.get("OPOS_TEST_VAR"),
    "start": start,
    "end": time.time(),
}
with open("out.json", "w") as fh:
    json.dump(info, fh)
print("hello from", info["index"])
sys.exit(int(open("code").read()) if os.path.exists("code") else 0)
"""


@pytest.fixture
def job_script(tmp_path: Path) -> Path:
    path = tmp_path / "job.py"
    path.write_text(JOB_SCRIPT)
    return path


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


def run(job_script: Path) -> dict:
    """The spec fields that run the test's job script (shown to the sandbox read-only)."""
    return {"argv": [sys.executable, str(job_script)], "read_paths": [str(job_script)]}


def refs(ids: list[str], array_dir: Path, start: int = 0) -> list[JobRef]:
    return [JobRef(batch_id, array_dir / str(start + n)) for n, batch_id in enumerate(ids)]


def out(array_dir: Path, index: int) -> dict:
    return json.loads((array_dir / str(index) / "out.json").read_text())


def test_array_runs_with_exit_codes_environment_and_logs(
    make_array, wait_terminal, job_script, spool
):
    codes = [0, 1, 0, 3, 0]
    array_dir = make_array(5, lambda i: {"code": str(codes[i])})
    backend = get_backend("local", spool_dir=spool, slots=4)
    spec = ArraySpec(
        token="tok-basic_1",
        array_dir=array_dir,
        size=5,
        argv=[sys.executable, str(job_script)],
        environment={"OPOS_TEST_VAR": "hello world"},
        read_paths=[str(job_script)],
    )

    ids = backend.submit(spec)

    assert ids == [f"local:tok-basic_1:{i}" for i in range(5)]
    states = wait_terminal(backend, refs(ids, array_dir))
    # The answer the poller compares state by state (see polling.compare_view).
    assert isinstance(states, StatusAnswer) and states.consistent()
    assert set().union(*states.by_state.values()) == set(ids)
    for index, batch_id in enumerate(ids):
        expected = BatchState.SUCCEEDED if codes[index] == 0 else BatchState.FAILED
        assert states[batch_id].state is expected
        assert states[batch_id].exit_code == codes[index]
        info = out(array_dir, index)
        assert info["cwd"] == str(array_dir / str(index))
        assert info["job_dir"] == str(array_dir / str(index))
        assert info["index"] == str(index)
        assert info["extra"] == "hello world"
        element = array_dir / str(index)
        assert (element / "stdout.log").read_text() == f"hello from {index}\n"
        assert (element / "exit_code").read_text().strip() == str(codes[index])


def test_slot_limit_is_respected_and_status_starts_queued_work(
    make_array, wait_terminal, job_script, spool
):
    array_dir = make_array(6, lambda i: {"sleep": "0.4"})
    backend = LocalBackend(spool_dir=spool, slots=2)
    spec = ArraySpec("tok-slots", array_dir, 6, **run(job_script))

    ids = backend.submit(spec)

    first = backend.status(refs(ids, array_dir))
    counts = {s: [v.state for v in first.values()].count(s) for s in BatchState}
    assert counts[BatchState.RUNNING] + counts[BatchState.SUCCEEDED] <= 2
    assert counts[BatchState.QUEUED] >= 4
    states = wait_terminal(backend, refs(ids, array_dir), interval=0.05)
    assert {s.state for s in states.values()} == {BatchState.SUCCEEDED}
    intervals = [(out(array_dir, i)["start"], out(array_dir, i)["end"]) for i in range(6)]
    overlap = max(sum(1 for s, e in intervals if s <= t < e) for t, _ in intervals)
    assert overlap <= 2
    assert overlap == 2  # the slots were really used in parallel


def test_find_and_a_fresh_instance_see_the_same_jobs(make_array, wait_terminal, job_script, spool):
    array_dir = make_array(3, lambda i: {"sleep": "0.3", "code": str(i)})
    backend = LocalBackend(spool_dir=spool, slots=1)
    spec = ArraySpec("tok-restart", array_dir, 3, **run(job_script))
    ids = backend.submit(spec)

    assert backend.find("tok-restart") == ids
    assert backend.find("tok-unknown") == []
    with pytest.raises(BackendError):
        backend.submit(spec)  # the same token twice would run the jobs twice

    # As after a worker restart: nothing in memory, the new instance starts the queued ones.
    del backend
    fresh = LocalBackend(spool_dir=spool, slots=1)
    assert fresh.find("tok-restart") == ids
    states = wait_terminal(fresh, refs(ids, array_dir))
    assert [states[i].exit_code for i in ids] == [0, 1, 2]
    again = LocalBackend(spool_dir=spool, slots=1).status(refs(ids, array_dir))
    assert again == states


def test_resuming_from_start(make_array, wait_terminal, job_script, spool):
    array_dir = make_array(4)
    backend = LocalBackend(spool_dir=spool, slots=4)
    spec = ArraySpec("tok-resume", array_dir, 4, **run(job_script))

    tail = backend.submit(spec, start=2)

    assert tail == ["local:tok-resume:2", "local:tok-resume:3"]
    with pytest.raises(BackendError, match="never submitted"):
        backend.find("tok-resume")
    states = wait_terminal(backend, refs(tail, array_dir, start=2))
    assert {s.state for s in states.values()} == {BatchState.SUCCEEDED}
    assert not (array_dir / "0" / "out.json").exists()


def test_cancel_running_and_queued(make_array, wait_terminal, job_script, spool):
    array_dir = make_array(3, lambda i: {"sleep": "60"})
    backend = LocalBackend(spool_dir=spool, slots=2, kill_grace_s=5)
    spec = ArraySpec("tok-cancel", array_dir, 3, **run(job_script))
    ids = backend.submit(spec)
    assert [s.state for s in backend.status(refs(ids, array_dir)).values()] == [
        BatchState.RUNNING,
        BatchState.RUNNING,
        BatchState.QUEUED,
    ]
    pids = [int((array_dir / str(i) / "pid").read_text().split()[0]) for i in range(2)]

    backend.cancel(ids)

    states = wait_terminal(backend, refs(ids, array_dir), timeout=10)
    assert {s.state for s in states.values()} == {BatchState.CANCELLED}
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)  # the whole process group is gone
    assert not (array_dir / "2" / "pid").exists()  # the queued one never started


def test_process_killed_without_exit_code_is_lost(make_array, wait_terminal, job_script, spool):
    array_dir = make_array(1, lambda i: {"sleep": "60"})
    backend = LocalBackend(spool_dir=spool, slots=1)
    ids = backend.submit(ArraySpec("tok-lost", array_dir, 1, **run(job_script)))
    assert backend.status(refs(ids, array_dir))[ids[0]].state is BatchState.RUNNING
    pid = int((array_dir / "0" / "pid").read_text().split()[0])

    os.killpg(pid, signal.SIGKILL)

    states = wait_terminal(backend, refs(ids, array_dir), timeout=10)
    assert states[ids[0]].state is BatchState.LOST
    assert states[ids[0]].exit_code is None
    assert not (array_dir / "0" / "exit_code").exists()


def test_shell_metacharacters_arrive_literally(
    make_array, wait_terminal, job_script, spool, tmp_path
):
    canary = tmp_path / "pwned"
    hostile = [
        f"; rm -rf / $(touch {canary}) `touch {canary}`",
        f"&& touch {canary} | cat > {canary}",
        'it\'s "quoted" \\ $HOME *',
        "",
    ]
    array_dir = make_array(1)
    backend = LocalBackend(spool_dir=spool, slots=1)
    spec = ArraySpec(
        "tok-meta",
        array_dir,
        1,
        [sys.executable, str(job_script), *hostile],
        environment={"OPOS_TEST_VAR": f"$(touch {canary})"},
        read_paths=[str(job_script)],
    )
    ids = backend.submit(spec)

    states = wait_terminal(backend, refs(ids, array_dir))

    assert states[ids[0]].state is BatchState.SUCCEEDED
    assert out(array_dir, 0)["argv"] == hostile
    assert out(array_dir, 0)["extra"] == f"$(touch {canary})"
    assert not canary.exists()


def test_command_that_cannot_start_fails_with_127(make_array, wait_terminal, spool):
    array_dir = make_array(1)
    backend = LocalBackend(spool_dir=spool, slots=1)
    ids = backend.submit(ArraySpec("tok-127", array_dir, 1, ["/nonexistent/opos-command"]))

    states = wait_terminal(backend, refs(ids, array_dir))

    assert states[ids[0]].state is BatchState.FAILED
    assert states[ids[0]].exit_code == 127
    assert "cannot start" in (array_dir / "0" / "stderr.log").read_text()


def test_unknown_job_resolves_from_its_folder(tmp_path, spool):
    backend = LocalBackend(spool_dir=spool, slots=1)
    done, gone = tmp_path / "done", tmp_path / "gone"
    done.mkdir()
    gone.mkdir()
    (done / "exit_code").write_text("0\n")

    states = backend.status([JobRef("local:tok-x:0", done), JobRef("local:tok-x:1", gone)])

    assert states["local:tok-x:0"].state is BatchState.SUCCEEDED
    assert states["local:tok-x:1"].state is BatchState.LOST


@pytest.mark.parametrize(
    "kwargs",
    [
        {"token": "bad token"},
        {"token": "a/b"},
        {"token": ""},
        {"size": 0},
        {"argv": []},
        {"environment": {"OPOS_JOB_DIR": "x"}},
        {"environment": {"SLURM_ARRAY_TASK_ID": "1"}},
        {"environment": {"BAD-NAME": "x"}},
        {"cores": 0},
    ],
)
def test_spec_validation(tmp_path, kwargs):
    base = {"token": "ok", "array_dir": tmp_path, "size": 1, "argv": ["true"]}
    with pytest.raises(ValueError):
        ArraySpec(**{**base, **kwargs})


def test_submit_refuses_a_missing_array_folder(tmp_path, spool):
    backend = LocalBackend(spool_dir=spool, slots=1)
    with pytest.raises(BackendError, match="missing"):
        backend.submit(ArraySpec("tok-nodir", tmp_path / "nothing", 2, ["true"]))
    assert backend.find("tok-nodir") == []


def test_registry(tmp_path):
    with pytest.raises(ValueError, match="unknown kind of batch backend"):
        get_backend("pbs")
    assert isinstance(get_backend("local", spool_dir=tmp_path, slots=1), LocalBackend)


def test_status_starts_nothing_twice_under_concurrent_pollers(
    make_array, wait_terminal, job_script, spool
):
    """Two backend instances (two workers) polling at once never start an element twice."""
    array_dir = make_array(8, lambda i: {"sleep": "0.2"})
    first = LocalBackend(spool_dir=spool, slots=2)
    second = LocalBackend(spool_dir=spool, slots=2)
    ids = first.submit(ArraySpec("tok-twice", array_dir, 8, **run(job_script)))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        a = first.status(refs(ids, array_dir))
        b = second.status(refs(ids, array_dir))
        if all(s.state is BatchState.SUCCEEDED for s in {**a, **b}.values()):
            break
        time.sleep(0.05)
    for index in range(8):
        # The runner appends to stdout.log: one start, one line.
        assert (array_dir / str(index) / "stdout.log").read_text() == f"hello from {index}\n"


def test_worker_secrets_do_not_reach_jobs(tmp_path, monkeypatch):
    """DATABASE_URL, SECRET_KEY and the like stay with the worker."""
    import sys

    from campaigns.batch import get_backend
    from campaigns.batch.base import ArraySpec, BatchState, JobRef

    monkeypatch.setenv("SECRET_KEY", "do-not-leak")
    monkeypatch.setenv("DATABASE_URL", "postgres://user:secret@db/opos")
    backend = get_backend("local", spool_dir=tmp_path / "spool", slots=1)
    array = tmp_path / "array"
    (array / "0").mkdir(parents=True)
    code = "import json, os; json.dump(dict(os.environ), open('env.json', 'w'))"
    spec = ArraySpec(
        token="envcheck",
        array_dir=array,
        size=1,
        argv=[sys.executable, "-c", code],
        environment={"OPOS_STAGE": "generation"},
    )
    (batch_id,) = backend.submit(spec)
    deadline = time.monotonic() + 30
    while backend.status([JobRef(batch_id, array / "0")])[batch_id].state != BatchState.SUCCEEDED:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    env = json.loads((array / "0" / "env.json").read_text())
    assert "SECRET_KEY" not in env and "DATABASE_URL" not in env
    assert env["OPOS_STAGE"] == "generation"
    assert env["OPOS_JOB_DIR"] == str(array / "0")


# --- controls: hold, release, priority (the queue's order) ---------------------------------


def test_held_elements_wait_until_released(make_array, wait_terminal, job_script, spool):
    array_dir = make_array(3, lambda i: {"sleep": "0.3"})
    backend = LocalBackend(spool_dir=spool, slots=1)
    ids = backend.submit(ArraySpec("tok-hold", array_dir, 3, **run(job_script)))
    answers = backend.hold(ids)
    # The first element took the one slot at submission: it runs on; the rest are held.
    assert answers[ids[0]].outcome == ControlOutcome.SKIPPED
    assert [answers[i].outcome for i in ids[1:]] == [ControlOutcome.DONE] * 2
    wait_terminal(backend, refs(ids[:1], array_dir))
    time.sleep(0.3)
    states = backend.status(refs(ids, array_dir))
    assert [states[i].state for i in ids[1:]] == [BatchState.HELD] * 2
    assert not (array_dir / "1" / "out.json").exists()
    backend.release(ids)
    states = wait_terminal(backend, refs(ids, array_dir))
    assert {s.state for s in states.values()} == {BatchState.SUCCEEDED}


def test_priority_reorders_the_queue_of_waiting_arrays(
    make_array, wait_terminal, job_script, spool
):
    backend = LocalBackend(spool_dir=spool, slots=1)
    busy_dir = make_array(1, lambda i: {"sleep": "0.5"}, name="busy")
    busy = backend.submit(ArraySpec("tok-busy", busy_dir, 1, **run(job_script)))
    first_dir = make_array(1, lambda i: {}, name="first")
    first = backend.submit(ArraySpec("tok-first", first_dir, 1, priority=1, **run(job_script)))
    later_dir = make_array(1, lambda i: {}, name="later")
    later = backend.submit(ArraySpec("tok-later", later_dir, 1, priority=1, **run(job_script)))
    # Filed last, made critical: it starts before the one filed before it.
    assert backend.set_priority(later, 3)[later[0]].outcome == ControlOutcome.DONE
    assert backend.set_priority(busy, 3)[busy[0]].outcome == ControlOutcome.SKIPPED  # running
    wait_terminal(backend, refs(busy, busy_dir) + refs(first, first_dir) + refs(later, later_dir))
    assert out(later_dir, 0)["start"] < out(first_dir, 0)["start"]
    moved = backend.move(first, Placement(partition="spare"))
    assert moved[first[0]].outcome == ControlOutcome.SKIPPED

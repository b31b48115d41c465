"""Slurm backend against a real cluster (scripts/slurm/up.sh); skipped when none responds.

Set OPOS_REQUIRE_SLURM=1 to make a missing cluster a failure (CI).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from campaigns.batch import (
    ArraySpec,
    BackendError,
    BackendUnavailable,
    BatchState,
    JobRef,
    StatusAnswer,
    get_backend,
)
from campaigns.batch.base import check_array_dir
from campaigns.batch.slurm import SlurmBackend
from campaigns.batch.slurm_records import (
    compress_ids,
    decode_exit_code,
    map_slurm_state,
    parse_task_string,
)

JOB_SCRIPT = """\
import json, os, sys, time
sleep = float(open("sleep").read()) if os.path.exists("sleep") else 0.0
time.sleep(sleep)
info = {
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "job_dir": os.environ.get("OPOS_JOB_DIR"),
    "index": os.environ.get("OPOS_ARRAY_INDEX"),
    "extra": os.environ.get("OPOS_TEST_VAR"),
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
def backend(slurm_cluster, tmp_path: Path) -> SlurmBackend:
    return SlurmBackend(state_dir=tmp_path / "slurm-state", timeout=60)


@pytest.fixture
def token(request) -> str:
    """A token unique across test runs (the cluster outlives them)."""
    return f"t{time.time_ns()}-{request.node.name[:40]}".replace("[", "_").replace("]", "_")


def refs(ids: list[str], array_dir: Path) -> list[JobRef]:
    return [JobRef(batch_id, array_dir / str(n)) for n, batch_id in enumerate(ids)]


def out(array_dir: Path, index: int) -> dict:
    return json.loads((array_dir / str(index) / "out.json").read_text())


def wait_for(backend, job_refs, states, timeout=60.0):
    """Poll until every job is in one of ``states``."""
    deadline = time.monotonic() + timeout
    while True:
        current = backend.status(job_refs)
        if all(s.state in states for s in current.values()):
            return current
        if time.monotonic() > deadline:
            pytest.fail(f"not {states} after {timeout}s: {current}")
        time.sleep(0.5)


@pytest.mark.slurm
def test_array_of_five_exit_codes_and_find(backend, make_array, wait_terminal, job_script, token):
    codes = [0, 1, 0, 2, 0]
    array_dir = make_array(5, lambda i: {"code": str(codes[i])})
    spec = ArraySpec(
        token,
        array_dir,
        5,
        [sys.executable, str(job_script), "plain"],
        memory_mb=100,
        walltime_s=300,
        environment={"OPOS_TEST_VAR": "from the worker"},
    )

    ids = backend.submit(spec)

    assert len(ids) == 5
    assert len({i.split("_")[0] for i in ids}) == 1  # one sbatch call
    assert backend.find(token) == ids
    # Another worker with no records on disk finds them through squeue alone.
    assert SlurmBackend(state_dir=Path(str(array_dir) + "-empty-state")).find(token) == ids
    states = wait_terminal(backend, refs(ids, array_dir), timeout=90, interval=0.5)
    # The answer the poller compares state by state (see polling.compare_view).
    assert isinstance(states, StatusAnswer) and states.consistent()
    assert set().union(*states.by_state.values()) == set(ids)
    for index, batch_id in enumerate(ids):
        expected = BatchState.SUCCEEDED if codes[index] == 0 else BatchState.FAILED
        assert states[batch_id].state is expected, states[batch_id]
        assert states[batch_id].exit_code == codes[index]
        info = out(array_dir, index)
        assert info["cwd"] == str(array_dir / str(index))
        assert info["job_dir"] == str(array_dir / str(index))
        assert info["index"] == str(index)
        assert info["extra"] == "from the worker"
        assert (array_dir / str(index) / "stdout.log").read_text() == f"hello from {index}\n"
        assert (array_dir / str(index) / "exit_code").read_text().strip() == str(codes[index])


@pytest.mark.slurm
def test_split_into_several_arrays(backend, make_array, wait_terminal, job_script, token, tmp_path):
    array_dir = make_array(5)
    split = SlurmBackend(state_dir=tmp_path / "split-state", max_array_size=2)
    spec = ArraySpec(token, array_dir, 5, [sys.executable, str(job_script)], memory_mb=100)

    ids = split.submit(spec)

    masters = [i.split("_")[0] for i in ids]
    assert len(set(masters)) == 3  # chunks of 2, 2, 1
    assert [i.split("_")[1] for i in ids] == ["0", "1", "0", "1", "0"]
    assert split.find(token) == ids
    assert SlurmBackend(state_dir=tmp_path / "no-records").find(token) == ids
    states = wait_terminal(split, refs(ids, array_dir), timeout=90, interval=0.5)
    assert {s.state for s in states.values()} == {BatchState.SUCCEEDED}
    for index in range(5):
        # Each chunk's offset put every element into its own folder, logs included.
        assert out(array_dir, index)["index"] == str(index)
        assert (array_dir / str(index) / "stdout.log").read_text() == f"hello from {index}\n"


@pytest.mark.slurm
def test_resume_a_submission_cut_short(backend, make_array, wait_terminal, job_script, token):
    array_dir = make_array(3)
    split = SlurmBackend(state_dir=backend.state_dir, max_array_size=2)
    spec = ArraySpec(token, array_dir, 3, [sys.executable, str(job_script)], memory_mb=100)
    # As if the worker died after the first chunk. submit() makes logs/ before its first
    # chunk: without it Slurm cannot open the output files and fails the tasks (0:53) when
    # they start before the second call makes it.
    check_array_dir(spec)
    head = split._submit_chunk(spec, 0, 2)

    found = split.find(token)
    assert found == [f"{head}_0", f"{head}_1"]
    tail = split.submit(spec, start=len(found))

    assert len(tail) == 1
    assert split.find(token) == found + tail
    states = wait_terminal(split, refs(found + tail, array_dir), timeout=90, interval=0.5)
    assert {s.state for s in states.values()} == {BatchState.SUCCEEDED}
    assert out(array_dir, 2)["index"] == "2"


@pytest.mark.slurm
def test_cancel_a_long_running_element(backend, make_array, wait_terminal, job_script, token):
    array_dir = make_array(2, lambda i: {"sleep": "300" if i == 0 else "0"})
    spec = ArraySpec(token, array_dir, 2, [sys.executable, str(job_script)], memory_mb=100)
    ids = backend.submit(spec)
    wait_for(backend, refs(ids[:1], array_dir), {BatchState.RUNNING})

    backend.cancel(ids[:1])

    states = wait_terminal(backend, refs(ids, array_dir), timeout=60, interval=0.5)
    assert states[ids[0]].state is BatchState.CANCELLED
    assert states[ids[1]].state is BatchState.SUCCEEDED
    backend.cancel(ids)  # cancelling finished jobs is harmless


@pytest.mark.slurm
def test_held_element_is_reported_held(backend, make_array, job_script, token):
    # Each element asks for every CPU of the node, so with OverSubscribe=FORCE:4 at most four
    # run at once and the last of twelve is certainly pending when we hold it.
    cpus = int(
        subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%c"], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )
    array_dir = make_array(12, lambda i: {"sleep": "300"})
    spec = ArraySpec(
        token, array_dir, 12, [sys.executable, str(job_script)], cores=cpus, memory_mb=100
    )
    ids = backend.submit(spec)
    try:
        subprocess.run(["scontrol", "hold", ids[-1]], check=True, capture_output=True)

        states = backend.status(refs(ids, array_dir))

        assert states[ids[-1]].state is BatchState.HELD
        assert states[ids[-1]].reason in ("JobHeldAdmin", "JobHeldUser")
        assert {s.state for s in states.values()} <= {
            BatchState.QUEUED,
            BatchState.RUNNING,
            BatchState.HELD,
        }
    finally:
        backend.cancel(ids)
    # Pending tasks vanish from squeue when cancelled; the cancel marker still tells.
    states = wait_for(backend, refs(ids, array_dir), {BatchState.CANCELLED})
    assert {s.state for s in states.values()} == {BatchState.CANCELLED}


@pytest.mark.slurm
def test_shell_metacharacters_arrive_literally(
    backend, make_array, wait_terminal, job_script, token, tmp_path
):
    canary = tmp_path / "pwned"
    hostile = [
        f"; rm -rf / $(touch {canary}) `touch {canary}`",
        f"&& touch {canary} | cat > {canary}",
        'it\'s "quoted" \\ $HOME * %a %j',
        "",
    ]
    # A folder name with spaces and Slurm filename-pattern characters.
    array_dir = make_array(1, name="dir with spaces %x %a")
    spec = ArraySpec(
        token,
        array_dir,
        1,
        [sys.executable, str(job_script), *hostile],
        memory_mb=100,
        environment={"OPOS_TEST_VAR": f"$(touch {canary})"},
    )
    ids = backend.submit(spec)

    states = wait_terminal(backend, refs(ids, array_dir), timeout=90, interval=0.5)

    assert states[ids[0]].state is BatchState.SUCCEEDED, states
    assert out(array_dir, 0)["argv"] == hostile
    assert out(array_dir, 0)["extra"] == f"$(touch {canary})"
    assert (array_dir / "0" / "stdout.log").read_text() == "hello from 0\n"
    assert not canary.exists()


@pytest.mark.slurm
def test_jobs_slurm_no_longer_lists_resolve_from_their_folder(backend, tmp_path):
    done, failed, gone = (tmp_path / n for n in ("done", "failed", "gone"))
    for folder in (done, failed, gone):
        folder.mkdir()
    (done / "exit_code").write_text("0\n")
    (failed / "exit_code").write_text("3\n")

    states = backend.status(
        [JobRef("999999990_0", done), JobRef("999999990_1", failed), JobRef("999999990_2", gone)]
    )

    assert states["999999990_0"].state is BatchState.SUCCEEDED
    assert (states["999999990_1"].state, states["999999990_1"].exit_code) == (BatchState.FAILED, 3)
    assert states["999999990_2"].state is BatchState.LOST
    assert backend.find("t-never-submitted") == []


@pytest.mark.slurm
def test_unreachable_controller_is_unavailable_not_a_job_state(slurm_cluster, tmp_path, make_array):
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")).read_text()
    bad = tmp_path / "slurm.conf"
    # Nothing listens on port 9; MessageTimeout=2 makes the clients give up after ~1 s.
    bad.write_text(
        conf.replace(
            "SlurmctldHost=localhost", "SlurmctldHost=localhost\nSlurmctldPort=9\nMessageTimeout=2"
        )
    )
    unreachable = SlurmBackend(state_dir=tmp_path / "state", slurm_conf=bad, max_array_size=10)
    array_dir = make_array(1)

    # squeue --json exits 0 here, with an "errors" list and no jobs: not "all jobs gone".
    with pytest.raises(BackendUnavailable):
        unreachable.status([JobRef("1_0", array_dir / "0")])
    with pytest.raises(BackendUnavailable):
        unreachable.submit(ArraySpec("t-unreachable", array_dir, 1, ["true"], memory_mb=100))
    with pytest.raises(BackendUnavailable, match="timed out"):
        SlurmBackend(state_dir=tmp_path / "state", timeout=0.001).status(
            [JobRef("1_0", array_dir / "0")]
        )


@pytest.mark.slurm
def test_bad_request_is_an_error_not_unavailability(backend, make_array, token):
    array_dir = make_array(1)
    spec = ArraySpec(token, array_dir, 1, ["true"], partition="no-such-partition")
    with pytest.raises(BackendError) as info:
        backend.submit(spec)
    assert not isinstance(info.value, BackendUnavailable)
    assert backend.find(token) == []


@pytest.mark.slurm
def test_registry_builds_slurm(slurm_cluster, tmp_path):
    backend = get_backend("slurm", state_dir=tmp_path, timeout=30)
    assert isinstance(backend, SlurmBackend)
    assert backend.max_array_size > 1


# --- pure helpers: no cluster needed, but they encode what the cluster showed ----------------


@pytest.mark.parametrize(
    ("text", "tasks"),
    [
        ("5-9", [5, 6, 7, 8, 9]),
        ("0,3,6,9%2", [0, 3, 6, 9]),
        ("1-9:4", [1, 5, 9]),
        ("0x5E", [1, 2, 3, 4, 6]),  # sacct 22.05 gives pending tasks as a hex bitmap
    ],
)
def test_parse_task_string(text, tasks):
    assert parse_task_string(text) == tasks


def test_decode_exit_code_shapes():
    assert decode_exit_code(0) == 0
    assert decode_exit_code(256) == 1  # squeue 22.05: raw wait status
    assert decode_exit_code(15) == 143  # killed by SIGTERM (time limit)
    assert decode_exit_code({"status": ["SUCCESS"], "return_code": {"set": True, "number": 0}}) == 0
    assert decode_exit_code({"status": "FAILED", "return_code": 2}) == 2
    assert decode_exit_code({"status": ["SIGNALED"], "signal": {"id": {"number": 9}}}) == 137


def test_state_mapping():
    assert map_slurm_state(["PENDING"], "Priority", None).state is BatchState.QUEUED
    assert map_slurm_state(["PENDING"], "JobHeldUser", None).state is BatchState.HELD
    assert map_slurm_state(["PENDING"], "JobHeldAdmin", None).state is BatchState.HELD
    assert map_slurm_state(["RUNNING"], "None", None).state is BatchState.RUNNING
    assert map_slurm_state(["COMPLETING"], "None", None).state is BatchState.RUNNING
    assert map_slurm_state(["SUSPENDED"], "None", None).state is BatchState.HELD
    assert map_slurm_state(["REQUEUED"], "None", None).state is BatchState.QUEUED
    assert map_slurm_state(["COMPLETED"], "None", 0) == map_slurm_state(["COMPLETED"], "", None)
    for name in ("FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL"):
        status = map_slurm_state([name], "None", 1)
        assert status.state is BatchState.FAILED
        assert name in status.reason
    assert map_slurm_state(["CANCELLED"], "None", None).state is BatchState.CANCELLED
    assert map_slurm_state(["FANCY_NEW_STATE"], "", None).state is BatchState.QUEUED


def test_compress_ids():
    assert compress_ids(["7_1", "7_2", "7_5", "9", "8_0"]) == ["9", "7_[1,2,5]", "8_[0]"]
    with pytest.raises(BackendError):
        compress_ids(["7.1"])


def run_shim(env: dict, *argv: str) -> subprocess.CompletedProcess:
    from campaigns.batch.base import JOB_SHIM

    return subprocess.run(
        ["bash", str(JOB_SHIM), *argv],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_shim_makes_the_element_folder_from_offset_and_task_and_links_the_logs(tmp_path):
    (tmp_path / "logs").mkdir()
    env = {
        "OPOS_ARRAY_DIR": str(tmp_path),
        "OPOS_ARRAY_OFFSET": "1001",
        "SLURM_ARRAY_TASK_ID": "7",
        "SLURM_ARRAY_JOB_ID": "42",
    }
    done = run_shim(env, "sh", "-c", 'echo "$OPOS_ARRAY_INDEX $OPOS_JOB_DIR $PWD"; exit 3')

    folder = tmp_path / "1008"
    assert done.returncode == 3
    assert done.stdout.split() == ["1008", str(folder), str(folder)]
    assert (folder / "exit_code").read_text() == "3\n"
    assert os.readlink(folder / "stdout.log") == "../logs/42_7.out"
    assert os.readlink(folder / "stderr.log") == "../logs/42_7.err"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1008", "logs"]  # nothing else


def test_shim_takes_the_index_htcondor_computes_and_its_log_name(tmp_path):
    env = {"OPOS_ARRAY_DIR": str(tmp_path), "OPOS_ARRAY_INDEX": "5", "OPOS_LOG_NAME": "12.3"}
    assert run_shim(env, "true").returncode == 0
    assert os.readlink(tmp_path / "5" / "stderr.log") == "../logs/12.3.err"


def test_shim_without_a_folder_fails_as_storage(tmp_path):
    from campaigns.execution.wrapper import EXIT_OUTPUT_AREA

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # the element folder cannot be made under a file
    env = {"OPOS_ARRAY_DIR": str(blocker), "OPOS_ARRAY_INDEX": "0"}
    done = run_shim(env, "touch", str(tmp_path / "ran"))
    assert done.returncode == EXIT_OUTPUT_AREA  # classified storage, retried
    assert "cannot make the element folder" in done.stderr
    assert not (tmp_path / "ran").exists()

"""Local backend: array elements run as detached processes on this machine.

This is the embedded default, so it must survive what a real batch system survives: the worker
that submitted a job may be restarted while the job runs, and several workers may poll at once.
Hence no state lives in memory; everything is on disk, changed under an exclusive ``flock``:

``spool_dir/``
    ``arrays/<token>.<start>.json``  the submitted array (elements ``start`` .. ``size-1``),
                                     written before anything starts
    ``next/<token>.<start>``         index of the next element to start; an element below it
                                     has been started (or skipped because cancelled)
    ``pending/<p><ns>-<token>.<start>`` arrays with elements still waiting for a slot, in
                                     name order: ``p`` is 4 minus the priority level
                                     (critical first), then first come first served;
                                     ``set_priority`` renames the entry
    ``held/<token>.<index>``         an element held (a pause): it does not start, and the
                                     elements after it in its array wait behind it
    ``running/<token>.<index>``      one per started element still counted against the slots
``<array_dir>/<index>/``  made when the element starts (or is cancelled before it starts)
    ``pid``        ``<pid> <start time>`` of the element's runner (the start time guards
                   against pid reuse)
    ``stdout.log``, ``stderr.log``  written there by the runner
    ``exit_code``  written atomically by :mod:`campaigns.batch.local_runner`
    ``usage.json`` what the command used (``wait4``), written by the runner just before
    ``cancelled``  written by :meth:`LocalBackend.cancel` before it kills the process group

Isolation: every element runs in a bubblewrap sandbox that hides the service's files, and as
another user when the service runs as root (:mod:`campaigns.batch.sandbox`); without bwrap
the backend refuses to submit unless ``isolation="off"`` was chosen explicitly.

Slots: :meth:`LocalBackend.submit` starts as many elements as there are free slots and leaves
the rest queued; every :meth:`LocalBackend.status` call (one per poll cycle) starts queued
elements as slots free up. The element counter is advanced *before* a process is started, so a
crash can lose an element (reported lost) but never start it twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import sandbox
from .base import (
    CANCELLED_FILE,
    DEFAULT_TIMEOUT_S,
    TOKEN_RE,
    ArraySpec,
    BackendError,
    BackendUnavailable,
    BatchBackend,
    BatchState,
    ControlAnswer,
    ControlAnswers,
    ControlOutcome,
    JobRef,
    JobStatus,
    JobUsage,
    Placement,
    StatusAnswer,
    check_array_dir,
    check_start,
    check_token,
    default_state_dir,
    job_environment,
    mark_cancelled,
    read_exit_code,
    resolve_absent,
    resolve_from_disk,
    write_atomic,
)
from .usage import read_usage_file

RUNNER = Path(__file__).with_name("local_runner.py")
PID_FILE = "pid"

# Popen objects of the runners this process started, only so that finished ones are reaped
# (a zombie would look alive). Losing this dict (worker restart) loses nothing.
_children: dict[int, subprocess.Popen[bytes]] = {}


def batch_id(token: str, index: int) -> str:
    """The id of element ``index`` of the array submitted with ``token``."""
    return f"local:{token}:{index}"


def parse_batch_id(value: str) -> tuple[str, int]:
    """``local:<token>:<index>`` -> (token, index)."""
    prefix, _, rest = value.partition(":")
    token, _, index = rest.rpartition(":")
    if prefix != "local" or not TOKEN_RE.match(token) or not index.isdigit():
        raise BackendError(f"not a local batch id: {value!r}")
    return token, int(index)


def _process_start_time(pid: int) -> str | None:
    """Start time of a live (non-zombie) process, "0" where /proc is missing; None if gone."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        try:  # no /proc (macOS): existence only
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "0"
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _read_pid(workdir: Path) -> tuple[int, str] | None:
    try:
        pid, start = (workdir / PID_FILE).read_text().split()
        return int(pid), start
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None


def _alive(entry: tuple[int, str] | None) -> bool:
    if entry is None:
        return False
    pid, start = entry
    current = _process_start_time(pid)
    return current is not None and (current == start or "0" in (current, start))


def _group_alive(entry: tuple[int, str]) -> bool:
    """Whether anything of the element's process group runs: in the sandbox bwrap (the
    leader) ends on SIGTERM at once while the runner inside still records the exit code."""
    if _alive(entry):
        return True
    try:
        os.killpg(entry[0], 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class LocalBackend(BatchBackend):
    """Runs each array element as a detached process, at most ``slots`` at a time."""

    name = "local"

    def __init__(
        self,
        *,
        spool_dir: str | Path | None = None,
        slots: int | None = None,
        python: str = sys.executable,
        kill_grace_s: float = 5.0,
        timeout: float = DEFAULT_TIMEOUT_S,
        isolation: str = sandbox.SANDBOX,
        hidden_paths: Sequence[str | Path] = (),
        tool_paths: Sequence[str | Path] = (),
        job_user: str | None = None,
        job_network: bool = False,
    ) -> None:
        """``isolation`` is ``"sandbox"`` (bubblewrap, the default) or ``"off"``;
        ``hidden_paths`` are covered in the sandbox (the spool and the service's home always
        are), ``tool_paths`` shown read-only again inside them (the project's code); jobs
        run as ``job_user`` (default ``nobody``) when the service runs as root; the sandbox
        has no network unless ``job_network``."""
        super().__init__(timeout=timeout)
        self.spool = Path(spool_dir) if spool_dir else default_state_dir("local")
        self.slots = int(slots or os.cpu_count() or 1)
        if self.slots < 1:
            raise ValueError("slots must be at least 1")
        self.python = python
        self.kill_grace_s = kill_grace_s
        for sub in ("arrays", "next", "pending", "running", "held"):
            (self.spool / sub).mkdir(parents=True, exist_ok=True)
        self.isolation = sandbox.build(
            isolation,
            hidden_paths=[*hidden_paths, self.spool],
            tool_paths=tool_paths,
            job_user_name=job_user,
            network=job_network,
            python=python,
        )

    # --- interface ---------------------------------------------------------------------------

    def submit(self, spec: ArraySpec, start: int = 0) -> list[str]:
        check_start(spec, start)
        check_array_dir(spec)
        sandbox.check(self.isolation)
        key = f"{spec.token}.{start}"
        with self._locked():
            for rec in self._records(spec.token):
                if rec["start"] < spec.size and start < rec["size"]:
                    raise BackendError(
                        f"token {spec.token}: elements {rec['start']}..{rec['size'] - 1} "
                        "were already submitted"
                    )
            record = {
                "token": spec.token,
                "start": start,
                "size": spec.size,
                "array_dir": str(spec.array_dir),
                "argv": spec.argv,
                "environment": spec.environment,
                "read_paths": list(spec.read_paths),
                "submitted_at": time.time(),
            }
            write_atomic(self.spool / "next" / key, f"{start}\n")
            level = 1 if spec.priority is None else spec.priority
            write_atomic(self.spool / "pending" / f"{4 - level}{time.time_ns():019d}-{key}", "")
            # The record goes last: find() sees an array only once it can be started.
            write_atomic(self.spool / "arrays" / f"{key}.json", json.dumps(record))
            self._fill()
        return [batch_id(spec.token, i) for i in range(start, spec.size)]

    def status(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        result = StatusAnswer()
        records: dict[str, list[dict[str, Any]]] = {}
        with self._locked():
            self._fill()
            for job in jobs:
                token, index = parse_batch_id(job.batch_id)
                if token not in records:
                    records[token] = self._records(token)
                rec = next((r for r in records[token] if r["start"] <= index < r["size"]), None)
                result[job.batch_id] = self._element_status(rec, index, Path(job.workdir))
        return result

    def usage(self, jobs: Sequence[JobRef]) -> dict[str, JobUsage]:
        """What the runner measured (``usage.json``, from ``wait4``) for each finished job."""
        result = {}
        for job in jobs:
            found = read_usage_file(job.workdir)
            if found is not None:
                result[job.batch_id] = found
        return result

    def cancel(self, batch_ids: Sequence[str]) -> None:
        victims: list[tuple[int, str]] = []
        records: dict[str, list[dict[str, Any]]] = {}
        with self._locked():
            for value in batch_ids:
                token, index = parse_batch_id(value)
                if token not in records:
                    records[token] = self._records(token)
                rec = next((r for r in records[token] if r["start"] <= index < r["size"]), None)
                if rec is None:
                    continue
                workdir = Path(rec["array_dir"]) / str(index)
                if read_exit_code(workdir) is not None:
                    continue  # already finished
                mark_cancelled(workdir, f"{time.time()}\n")
                entry = _read_pid(workdir)
                if _alive(entry):
                    assert entry is not None
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(entry[0], signal.SIGTERM)
                    victims.append(entry)
            deadline = time.monotonic() + self.kill_grace_s
            while victims and time.monotonic() < deadline:
                victims = [v for v in victims if _group_alive(v)]
                if victims:
                    time.sleep(0.05)
            for victim in victims:
                if _group_alive(victim):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(victim[0], signal.SIGKILL)
            deadline = time.monotonic() + 2.0  # SIGKILL is not instant
            while victims and time.monotonic() < deadline:
                victims = [v for v in victims if _group_alive(v)]
                if victims:
                    time.sleep(0.02)
            self._fill()

    def hold(self, batch_ids: Sequence[str]) -> ControlAnswers:
        answers: ControlAnswers = {}
        with self._locked():
            for value, rec, index in self._elements(batch_ids):
                if not self._waiting(rec, index):
                    answers[value] = ControlAnswer(ControlOutcome.SKIPPED, "already started")
                    continue
                write_atomic(self._held(value), f"{time.time()}\n")
                answers[value] = ControlAnswer(ControlOutcome.DONE)
        return answers

    def release(self, batch_ids: Sequence[str]) -> ControlAnswers:
        answers: ControlAnswers = {}
        with self._locked():
            for value, _rec, _index in self._elements(batch_ids):
                self._held(value).unlink(missing_ok=True)
                answers[value] = ControlAnswer(ControlOutcome.DONE)
            self._fill()
        return answers

    def set_priority(self, batch_ids: Sequence[str], level: int) -> ControlAnswers:
        """Move the arrays of the jobs in the queue of waiting arrays: a whole array at once
        (its elements start in order)."""
        answers: ControlAnswers = {}
        with self._locked():
            entries = {e.name.split("-", 1)[1]: e for e in (self.spool / "pending").iterdir()}
            for value, rec, index in self._elements(batch_ids):
                key = f"{rec['token']}.{rec['start']}"
                entry = entries.get(key)
                if entry is None or not self._waiting(rec, index):
                    answers[value] = ControlAnswer(ControlOutcome.SKIPPED, "already started")
                    continue
                name = f"{4 - level}{entry.name[1:]}"
                if name != entry.name:
                    entry.rename(entry.with_name(name))
                    entries[key] = entry.with_name(name)
                answers[value] = ControlAnswer(ControlOutcome.DONE)
        return answers

    def move(self, batch_ids: Sequence[str], placement: Placement) -> ControlAnswers:
        return {
            value: ControlAnswer(ControlOutcome.SKIPPED, "the local backend has no partitions")
            for value in batch_ids
        }

    def find(self, token: str) -> list[str]:
        check_token(token)
        with self._locked():
            records = self._records(token)
        ids: list[str] = []
        for rec in sorted(records, key=lambda r: r["start"]):
            if rec["start"] != len(ids):
                raise BackendError(
                    f"token {token}: elements {len(ids)}..{rec['start'] - 1} were never "
                    "submitted but later ones were"
                )
            ids.extend(batch_id(token, i) for i in range(rec["start"], rec["size"]))
        return ids

    # --- internals ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.spool / "lock", "a+") as fh:
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError as exc:
                    if time.monotonic() > deadline:
                        raise BackendUnavailable("local spool lock busy") from exc
                    time.sleep(0.02)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _records(self, token: str) -> list[dict[str, Any]]:
        records = []
        for path in (self.spool / "arrays").glob(f"{token}.*.json"):
            with contextlib.suppress(FileNotFoundError):
                records.append(json.loads(path.read_text()))
        return [r for r in records if r["token"] == token]

    def _elements(self, batch_ids: Sequence[str]) -> Iterator[tuple[str, dict[str, Any], int]]:
        """``(batch id, its array record, index)`` of each id the spool knows."""
        records: dict[str, list[dict[str, Any]]] = {}
        for value in batch_ids:
            token, index = parse_batch_id(value)
            if token not in records:
                records[token] = self._records(token)
            rec = next((r for r in records[token] if r["start"] <= index < r["size"]), None)
            if rec is not None:
                yield value, rec, index

    def _waiting(self, rec: dict[str, Any], index: int) -> bool:
        """The element has not started (nor been cancelled before it could)."""
        workdir = Path(rec["array_dir"]) / str(index)
        started = index < self._next(f"{rec['token']}.{rec['start']}")
        return not started and not (workdir / CANCELLED_FILE).exists()

    def _held(self, value: str) -> Path:
        token, index = parse_batch_id(value)
        return self.spool / "held" / f"{token}.{index}"

    def _next(self, key: str) -> int:
        try:
            return int((self.spool / "next" / key).read_text())
        except FileNotFoundError:
            return 0

    def _element_status(self, rec: dict[str, Any] | None, index: int, workdir: Path) -> JobStatus:
        if rec is None:
            return resolve_absent(workdir, "unknown to the local spool")
        done = resolve_from_disk(workdir)
        if done is not None:
            return done
        if index >= self._next(f"{rec['token']}.{rec['start']}"):
            if (self.spool / "held" / f"{rec['token']}.{index}").exists():
                return JobStatus(BatchState.HELD, None, "held")
            return JobStatus(BatchState.QUEUED, None, "waiting for a free slot")
        entry = _read_pid(workdir)
        if _alive(entry):
            return JobStatus(BatchState.RUNNING)
        # The runner may have written its exit code just before exiting.
        return resolve_absent(workdir, "process ended without writing an exit code")

    def _fill(self) -> None:
        """Start queued elements while slots are free. Caller holds the lock."""
        running = 0
        for marker in (self.spool / "running").iterdir():
            workdir = Path(marker.read_text().strip())
            if read_exit_code(workdir) is None and _alive(_read_pid(workdir)):
                running += 1
            else:
                marker.unlink(missing_ok=True)
        free = self.slots - running
        for entry in sorted((self.spool / "pending").iterdir()):
            if free <= 0:
                return
            key = entry.name.split("-", 1)[1]
            try:
                rec = json.loads((self.spool / "arrays" / f"{key}.json").read_text())
            except FileNotFoundError:
                continue  # submit() is writing it (cannot happen under the lock) or gone
            index = self._next(key)
            while free > 0 and index < rec["size"]:
                workdir = Path(rec["array_dir"]) / str(index)
                held = (self.spool / "held" / f"{rec['token']}.{index}").exists()
                if held and not (workdir / CANCELLED_FILE).exists():
                    break  # held: it and the elements after it wait for the release
                write_atomic(self.spool / "next" / key, f"{index + 1}\n")
                if not (workdir / CANCELLED_FILE).exists():
                    try:
                        self._launch(rec, index, workdir)
                    except OSError as exc:
                        write_atomic(self.spool / "next" / key, f"{index}\n")
                        raise BackendUnavailable(f"cannot start a local process: {exc}") from exc
                    write_atomic(self.spool / "running" / f"{rec['token']}.{index}", f"{workdir}\n")
                    free -= 1
                index += 1
            if index >= rec["size"]:
                entry.unlink(missing_ok=True)

    def _launch(self, rec: dict[str, Any], index: int, workdir: Path) -> None:
        env = job_environment(rec["environment"])
        env["OPOS_JOB_DIR"] = str(workdir)
        env["OPOS_ARRAY_INDEX"] = str(index)
        # The element folder is made when the element starts, as the batch systems' job shim
        # does: nothing per element at submission.
        workdir.mkdir(exist_ok=True)
        isolation = self.isolation
        command = [self.python, "-I", str(RUNNER)]
        if isolation.sandboxed:
            # The service's home is hidden (and not writable by the job user): the job's
            # own folder is its home, as on a batch node's scratch.
            env["HOME"] = str(workdir)
            if isolation.job_user is not None:
                env["USER"] = env["LOGNAME"] = isolation.job_user.name
            command = [
                *sandbox.bwrap_argv(
                    isolation,
                    element_dir=workdir,
                    array_dir=Path(rec["array_dir"]),
                    read_paths=rec.get("read_paths", ()),
                    environment=env,
                ),
                *command,
                *sandbox.runner_options(isolation),
            ]
        stderr_log = workdir / "stderr.log"
        with open(stderr_log, "ab") as err:
            sandbox.prepare_element(isolation, workdir, [stderr_log])
            child = subprocess.Popen(  # noqa: S603 - argument list, no shell
                [*command, str(workdir), *rec["argv"]],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        _children[child.pid] = child
        start = _process_start_time(child.pid) or "0"
        write_atomic(workdir / PID_FILE, f"{child.pid} {start}\n")

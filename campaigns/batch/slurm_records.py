"""What Slurm's answers mean: job records of ``squeue --json`` and ``sacct --json``, array
task strings, exit codes and states, read without a cluster (the backend in ``slurm.py``
runs the commands; this module only reads what they print)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .base import TERMINAL_STATES, BackendError, BatchState, JobStatus

BATCH_ID_RE = re.compile(r"^(\d+)(?:_(\d+))?$")

HELD_REASONS = frozenset({"JobHeldUser", "JobHeldAdmin"})

STATE_MAP: dict[str, BatchState] = {
    "PENDING": BatchState.QUEUED,
    "REQUEUED": BatchState.QUEUED,
    "REQUEUE_FED": BatchState.QUEUED,
    "CONFIGURING": BatchState.RUNNING,
    "RUNNING": BatchState.RUNNING,
    "COMPLETING": BatchState.RUNNING,
    "STAGE_OUT": BatchState.RUNNING,
    "SIGNALING": BatchState.RUNNING,
    "RESIZING": BatchState.RUNNING,
    "SUSPENDED": BatchState.HELD,
    "STOPPED": BatchState.HELD,
    "REQUEUE_HOLD": BatchState.HELD,
    "SPECIAL_EXIT": BatchState.HELD,
    "RESV_DEL_HOLD": BatchState.HELD,
    "COMPLETED": BatchState.SUCCEEDED,
    "FAILED": BatchState.FAILED,
    "TIMEOUT": BatchState.FAILED,
    "OUT_OF_MEMORY": BatchState.FAILED,
    "NODE_FAIL": BatchState.FAILED,
    "BOOT_FAIL": BatchState.FAILED,
    "DEADLINE": BatchState.FAILED,
    "PREEMPTED": BatchState.FAILED,
    "CANCELLED": BatchState.CANCELLED,
    "REVOKED": BatchState.CANCELLED,
}
"""Slurm ``job_state`` -> BatchState. Held jobs are PENDING with a held reason (see
:func:`map_slurm_state`); a suspended or requeue-held job does not progress until someone acts,
which is what held means to the tracker."""


# --- pure helpers (no cluster needed) ------------------------------------------------------


def _number(value: Any) -> int | None:
    """A Slurm JSON number: plain (22.05) or ``{"set": bool, "number": int}`` (23.02+)."""
    if isinstance(value, dict):
        return int(value["number"]) if value.get("set", True) and "number" in value else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _state_names(value: Any) -> list[str]:
    """``job_state``: "RUNNING" (22.05) or ["RUNNING", "COMPLETING"] (23.02+)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, dict):  # sacct: {"current": ..., "reason": ...}
        return _state_names(value.get("current"))
    return []


def decode_exit_code(value: Any) -> int | None:
    """Exit status in the shell convention from squeue's or sacct's ``exit_code``.

    squeue 22.05 gives the raw wait status (256 for exit 1, 15 for SIGTERM); 23.02+ and sacct
    give ``{"status": ..., "return_code": ..., "signal": {"id"/"signal_id": ...}}``.
    """
    if isinstance(value, dict):
        status = value.get("status")
        statuses = status if isinstance(status, list) else [status]
        if "SIGNALED" in statuses:
            signal = value.get("signal") or {}
            number = _number(signal.get("id", signal.get("signal_id")))
            return 128 + number if number else None
        return _number(value.get("return_code"))
    raw = _number(value)
    if raw is None:
        return None
    if raw & 0x7F:
        return 128 + (raw & 0x7F)
    return (raw >> 8) & 0xFF


def parse_task_string(text: str) -> list[int]:
    """Expand an array task string: "5-99", "0,3,6,9%2", "1-9:2" -> task ids.

    sacct 22.05 gives a hex bitmap instead ("0x5E" = tasks 1-4 and 6).
    """
    text = text.split("%", 1)[0].strip()
    if text.lower().startswith("0x"):
        bits = int(text, 16)
        return [i for i in range(bits.bit_length()) if bits >> i & 1]
    tasks: list[int] = []
    for part in filter(None, text.split(",")):
        span, _, step = part.partition(":")
        first, _, last = span.partition("-")
        tasks.extend(range(int(first), int(last or first) + 1, int(step or 1)))
    return tasks


def _expand(expr: str) -> list[str]:
    """The batch ids of one :func:`compress_ids` entry: "7_[1,2]" -> ["7_1", "7_2"]."""
    job, sep, tasks = expr.partition("_[")
    if not sep:
        return [expr]
    return [f"{job}_{task}" for task in tasks.rstrip("]").split(",")]


def compress_ids(batch_ids: Iterable[str]) -> list[str]:
    """["7_1", "7_2", "7_5", "9"] -> ["7_[1,2,5]", "9"]: a short scancel command line."""
    tasks: dict[str, list[str]] = {}
    plain: list[str] = []
    for value in batch_ids:
        match = BATCH_ID_RE.match(value)
        if not match:
            raise BackendError(f"not a Slurm batch id: {value!r}")
        if match.group(2) is None:
            plain.append(value)
        else:
            tasks.setdefault(match.group(1), []).append(match.group(2))
    return plain + [f"{job}_[{','.join(ids)}]" for job, ids in tasks.items()]


def map_slurm_state(names: Sequence[str], reason: str, exit_code: int | None) -> JobStatus:
    """JobStatus for a Slurm job state (with its flags), pending reason and exit code."""
    known = [n for n in names if n in STATE_MAP]
    if not known:
        return JobStatus(BatchState.QUEUED, None, f"unknown Slurm state {'+'.join(names)}")
    name = known[0]
    state = STATE_MAP[name]
    if state is BatchState.QUEUED and reason in HELD_REASONS:
        return JobStatus(BatchState.HELD, None, reason)
    if state in TERMINAL_STATES:
        if state is BatchState.SUCCEEDED:
            return JobStatus(state, exit_code if exit_code is not None else 0, "")
        return JobStatus(state, exit_code, name if reason in ("", "None") else f"{name}: {reason}")
    return JobStatus(state, None, "" if reason in ("", "None") else reason)


def _job_ids(record: Mapping[str, Any]) -> list[str]:
    """Batch ids a squeue/sacct record stands for (a compressed pending record: several)."""
    array = record.get("array")
    if isinstance(array, dict):  # sacct
        master = _number(array.get("job_id"))
        task = _number(array.get("task_id"))
        task_string = array.get("task") if isinstance(array.get("task"), str) else ""
    else:  # squeue
        master = _number(record.get("array_job_id"))
        task = _number(record.get("array_task_id"))
        task_string = record.get("array_task_string") or ""
    job_id = _number(record.get("job_id"))
    if not master:
        return [str(job_id)] if job_id is not None else []
    if task is not None:
        return [f"{master}_{task}"]
    if task_string:
        return [f"{master}_{t}" for t in parse_task_string(task_string)]
    return []


def _master_id(record: Mapping[str, Any]) -> str:
    array = record.get("array")
    if isinstance(array, dict):
        master = _number(array.get("job_id"))
    else:
        master = _number(record.get("array_job_id"))
    return str(master or _number(record.get("job_id")))


def parse_job_records(
    records: Iterable[Mapping[str, Any]], masters: set[str] | None = None
) -> dict[str, JobStatus]:
    """squeue or sacct ``jobs`` -> {batch id: JobStatus}, only for arrays in ``masters``."""
    result: dict[str, JobStatus] = {}
    for record in records:
        if masters is not None and _master_id(record) not in masters:
            continue
        state = record.get("job_state", record.get("state"))
        reason = record.get("state_reason")
        from_sacct = isinstance(state, dict)
        if from_sacct:
            reason = state.get("reason")
        code = decode_exit_code(record.get("exit_code"))
        status = map_slurm_state(_state_names(state), str(reason or ""), code)
        if from_sacct and status.state is BatchState.FAILED and code == 0:
            # sacct --json 22.05 reports return_code 0 for failed jobs (plain sacct shows 1:0).
            status = status._replace(exit_code=None)
        for batch_id in _job_ids(record):
            result[batch_id] = status
    return result


def _comment(record: Mapping[str, Any]) -> str:
    comment = record.get("comment")
    if isinstance(comment, dict):  # sacct: {"job": ..., "administrator": ..., "system": ...}
        comment = comment.get("job")
    return comment if isinstance(comment, str) else ""


def parse_chunks(records: Iterable[Mapping[str, Any]], token: str) -> dict[int, tuple[str, int]]:
    """{offset: (array job id, chunk size)} of the arrays submitted with ``token``."""
    chunks: dict[int, tuple[str, int]] = {}
    for record in records:
        if record.get("name") != token:
            continue
        name, _, rest = _comment(record).partition(":")
        offset, _, count = rest.partition(":")
        if name != token or not offset.isdigit() or not count.isdigit():
            continue
        chunks[int(offset)] = (_master_id(record), int(count))
    return chunks


def parse_sacct_arrays(records: Iterable[Mapping[str, Any]], token: str) -> dict[str, int]:
    """{array job id: highest task id seen + 1} of the arrays sacct lists under ``token``.

    For a submission whose comment did not reach accounting (Slurm stores comments only with
    ``AccountingStoreFlags=job_comment``): started tasks have their own record and pending ones
    a compressed record, so the highest task id gives the array size of an array nobody has
    cancelled tasks of.
    """
    sizes: dict[str, int] = {}
    for record in records:
        if record.get("name") != token:
            continue
        tasks = [int(batch_id.split("_")[1]) for batch_id in _job_ids(record) if "_" in batch_id]
        if tasks:
            master = _master_id(record)
            sizes[master] = max(sizes.get(master, 0), max(tasks) + 1)
    return sizes


def format_walltime(seconds: int) -> str:
    """Seconds -> Slurm ``--time`` (H:MM:SS; Slurm rounds up to whole minutes)."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _nothing_found(error: Any) -> bool:
    """Is this entry of a JSON answer's ``errors`` sacct's "no job matched"?"""
    if not isinstance(error, dict):
        return False
    return (
        error.get("error_number") == 9003 or "nothing found" in str(error.get("error", "")).lower()
    )


# --- the backend ---------------------------------------------------------------------------

"""What a finished job used, from each batch system's own accounting (pure parsing, no I/O).

* Slurm: ``sacct --parsable2 --noheader --noconvert --format=`` :data:`SACCT_FIELDS`. One
  line for the allocation (``123_4``) and one per step (``123_4.batch``, ``123_4.extern``,
  ``123_4.0``): CPU time and state come from the allocation line (its TotalCPU sums the
  steps), memory is the largest MaxRSS of the steps (the allocation line has none).
* HTCondor: the job ClassAd's ``RemoteUserCpu`` + ``RemoteSysCpu``, ``RemoteWallClockTime``
  (of the last run, ``CumulativeSlotTime`` when it ran several times), ``ResidentSetSize``
  (KiB) and ``RequestCpus``.
* Local: the ``usage.json`` the local runner writes from ``wait4`` when the command ends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .base import JobUsage

SACCT_FIELDS = ("JobID", "State", "ExitCode", "ElapsedRaw", "TotalCPU", "CPUTimeRAW", "MaxRSS")
"""What the Slurm backend asks sacct for, in this order."""

SLURM_ACTIVE = frozenset(
    {
        "PENDING",
        "RUNNING",
        "COMPLETING",
        "CONFIGURING",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "SUSPENDED",
        "STOPPED",
        "SPECIAL_EXIT",
        "RESV_DEL_HOLD",
    }
)
"""sacct states whose figures are not final yet."""

USAGE_FILE = "usage.json"
"""In the element folder (local backend): what the command used, written by the runner."""

_DURATION_RE = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")


def parse_duration(text: str) -> float | None:
    """Slurm's ``[DD-[HH:]]MM:SS[.mmm]`` -> seconds; None when empty or malformed."""
    match = _DURATION_RE.match(text.strip())
    if not match:
        return None
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def parse_memory_kb(text: str) -> int | None:
    """MaxRSS from ``sacct --noconvert`` (bytes, or with a K/M/G/T suffix) -> KiB."""
    text = text.strip()
    if not text:
        return None
    factors = {"K": 1, "M": 1024, "G": 1024**2, "T": 1024**3}
    if text[-1].upper() in factors:
        try:
            return int(float(text[:-1]) * factors[text[-1].upper()])
        except ValueError:
            return None
    try:
        return int(text) // 1024
    except ValueError:
        return None


def _int(text: str) -> int | None:
    return int(text) if text.strip().isdigit() else None


def parse_sacct_usage(text: str) -> dict[str, JobUsage]:
    """``sacct --parsable2`` lines (fields :data:`SACCT_FIELDS`) -> {batch id: JobUsage}."""
    allocations: dict[str, list[str]] = {}
    memory: dict[str, int] = {}
    steps: set[str] = set()
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < len(SACCT_FIELDS):
            continue
        job_id, state, exit_code, elapsed, total_cpu, cpu_raw, max_rss = fields[:7]
        base, dot, _step = job_id.partition(".")
        if "[" in base:  # a pending array record ("7_[2-9]"): nothing used yet
            continue
        if dot:
            steps.add(base)
            rss = parse_memory_kb(max_rss)
            if rss is not None:
                memory[base] = max(memory.get(base, 0), rss)
        else:
            allocations[base] = [state, exit_code, elapsed, total_cpu, cpu_raw]
    result = {}
    for base, (state, exit_code, elapsed, total_cpu, cpu_raw) in allocations.items():
        word = state.split(" ", 1)[0]  # "CANCELLED by 0"
        wall = _int(elapsed)
        result[base] = JobUsage(
            source="sacct",
            cpu_s=parse_duration(total_cpu),
            wall_s=float(wall) if wall is not None else None,
            core_s=float(_int(cpu_raw)) if _int(cpu_raw) is not None else None,
            max_rss_kb=memory.get(base),
            state=word,
            exit_code=exit_code,
            # A started job's figures are complete once its steps are recorded too.
            final=word not in SLURM_ACTIVE and (base in steps or not wall),
        )
    return result


def _ad_number(ad: Mapping[str, Any], key: str) -> float | None:
    value = ad.get(key)
    if hasattr(value, "eval"):  # an unevaluated ExprTree
        value = value.eval(ad)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


HTCONDOR_USAGE_ATTRIBUTES = (
    "ClusterId",
    "ProcId",
    "JobStatus",
    "ExitCode",
    "ExitBySignal",
    "ExitSignal",
    "RemoteUserCpu",
    "RemoteSysCpu",
    "RemoteWallClockTime",
    "CumulativeSlotTime",
    "ResidentSetSize",
    "RequestCpus",
)
"""The ClassAd attributes the HTCondor backend projects for usage."""

HTCONDOR_STATES = {1: "IDLE", 2: "RUNNING", 3: "REMOVED", 4: "COMPLETED", 5: "HELD", 6: "RUNNING"}


def usage_from_ad(ad: Mapping[str, Any]) -> JobUsage:
    """JobUsage of an HTCondor job ClassAd (queue or history)."""
    user = _ad_number(ad, "RemoteUserCpu")
    system = _ad_number(ad, "RemoteSysCpu")
    cpu = None if user is None and system is None else (user or 0.0) + (system or 0.0)
    wall = _ad_number(ad, "RemoteWallClockTime")
    slot_time = _ad_number(ad, "CumulativeSlotTime")
    cores = _ad_number(ad, "RequestCpus") or 1.0
    rss = _ad_number(ad, "ResidentSetSize")
    status = _ad_number(ad, "JobStatus")
    word = HTCONDOR_STATES.get(int(status), f"STATUS_{status}") if status is not None else ""
    if ad.get("ExitBySignal") is True:
        exit_code = f"signal {ad.get('ExitSignal')}"
    else:
        code = _ad_number(ad, "ExitCode")
        exit_code = str(int(code)) if code is not None else ""
    return JobUsage(
        source="classad",
        cpu_s=cpu,
        wall_s=wall,
        core_s=(slot_time or wall) * cores if (slot_time or wall) is not None else None,
        max_rss_kb=int(rss) if rss is not None else None,
        state=word,
        exit_code=exit_code,
        final=word in ("COMPLETED", "REMOVED"),
    )


def read_usage_file(workdir: Path | str) -> JobUsage | None:
    """The local runner's ``usage.json`` in ``workdir``; None when absent or unreadable."""
    try:
        data = json.loads((Path(workdir) / USAGE_FILE).read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    if not isinstance(data, dict):
        return None

    def number(key: str) -> float | None:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    user, system = number("cpu_user_s"), number("cpu_sys_s")
    rss = number("max_rss_kb")
    code = data.get("exit_code")
    return JobUsage(
        source="rusage",
        cpu_s=None if user is None and system is None else (user or 0.0) + (system or 0.0),
        wall_s=number("wall_s"),
        core_s=None,
        max_rss_kb=int(rss) if rss is not None else None,
        state="EXITED",
        exit_code=str(code) if isinstance(code, int) else "",
    )

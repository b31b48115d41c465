"""A job's logs and where it ran, read from its folder: the one log-tail reader.

Every backend leaves ``stdout.log`` and ``stderr.log`` in the job's element folder: the
local runner writes them there; on Slurm and HTCondor the job shim links them to the batch
system's files ``<array folder>/logs/<batch id>.out``/``.err``, which exist from before the
job starts. A job that never got as far as the shim's links (killed at start, its node
failed) has no links, while the batch system's files may hold why ("DUE TO TIME LIMIT",
"oom-kill"): those are read then, found by the batch id.

The wrapper writes the name of the host into the folder (``host``) before it runs the code,
so the host is known while the job runs and when it was killed before writing its manifest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..batch.base import LOGS_DIR, STDERR_FILE, STDOUT_FILE
from .wrapper import HOST_FILE

TAIL_BYTES = 4096
"""What the failure classifier reads of stderr."""
HOST_MAX = 255
# Batch ids that name log files: <array job>_<task> (Slurm), <cluster>.<proc> (HTCondor).
LOG_NAME_RE = re.compile(r"^[0-9]+[._][0-9]+$")
SUFFIX = {STDOUT_FILE: ".out", STDERR_FILE: ".err"}


@dataclass(frozen=True)
class LogTail:
    """The end of one log file: ``text`` None when it cannot be read here."""

    name: str
    path: Path
    text: str | None


def read_tail(path: Path, size: int) -> str | None:
    """The last ``size`` bytes of a file as text; None when it cannot be read."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            length = fh.tell()
            fh.seek(max(length - size, 0))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return None


def log_path(workdir: str | Path, name: str, batch_id: str = "") -> Path:
    """Where log ``name`` (``stdout.log``/``stderr.log``) of a job is: in its folder, else
    the batch system's file named by the batch id (when the folder has no link to it)."""
    own = Path(workdir) / name
    if own.exists() or own.is_symlink() or not LOG_NAME_RE.match(batch_id or ""):
        return own
    batch_file = Path(workdir).parent / LOGS_DIR / f"{batch_id}{SUFFIX[name]}"
    return batch_file if batch_file.exists() else own


def job_logs(workdir: str | Path, batch_id: str = "", size: int = 64 * 1024) -> list[LogTail]:
    """The tails of a job's stdout and stderr (empty without a folder)."""
    if not workdir:
        return []
    tails = []
    for name in (STDOUT_FILE, STDERR_FILE):
        path = log_path(workdir, name, batch_id)
        tails.append(LogTail(name, path, read_tail(path, size)))
    return tails


def stderr_tail(workdir: str | Path, size: int = TAIL_BYTES, batch_id: str = "") -> str:
    """The last ``size`` bytes of the job's stderr ('' when there is none)."""
    if not workdir:
        return ""
    return read_tail(log_path(workdir, STDERR_FILE, batch_id), size) or ""


def stdout_tail(workdir: str | Path, size: int = TAIL_BYTES, batch_id: str = "") -> str:
    """The last ``size`` bytes of the job's stdout ('' when there is none)."""
    if not workdir:
        return ""
    return read_tail(log_path(workdir, STDOUT_FILE, batch_id), size) or ""


def job_host(workdir: str | Path) -> str:
    """The host the job ran on, as the wrapper wrote it ('' when unknown)."""
    if not workdir:
        return ""
    text = read_tail(Path(workdir) / HOST_FILE, HOST_MAX) or ""
    return text.strip()[:HOST_MAX]

"""The one small interface every batch backend implements, and the helpers they share.

The tracker talks to Slurm, HTCondor and local processes through :class:`BatchBackend` only.
The interface is shaped by the execution rules (docs/architecture.md, "Execution rules"):

* Arrays, not jobs: :meth:`BatchBackend.submit` takes a whole :class:`ArraySpec` and makes one
  batch-system call for it, so a stage of 10 000 jobs is one ``sbatch --array``.
* Tokens: every submission carries a unique token that the batch system stores with the jobs
  (Slurm job name and comment, an HTCondor job attribute, the local spool). After a crash between
  "submitted" and "recorded", :meth:`BatchBackend.find` recovers the ids from the token, so the
  caller adopts the jobs instead of submitting them twice.
* Bulk polling: :meth:`BatchBackend.status` answers for many jobs with one query.
* Files as the last word: each element folder gets an ``exit_code`` file written atomically by
  the job shim, so a job the batch system has forgotten (Slurm keeps finished jobs for MinJobAge
  only) still resolves to succeeded or failed instead of lost.
* Nothing per element at submission: the caller writes the array's inputs into its folder (a
  few files whatever the size); each element's folder is made by the backend's job shim when
  the element starts. A folder that does not exist means the element never started.
* Controls, answered per job: :meth:`BatchBackend.hold`, :meth:`~BatchBackend.release`,
  :meth:`~BatchBackend.set_priority` and :meth:`~BatchBackend.move` act on queued jobs (a pause,
  a resume, a priority change, a new partition) and say for each job whether it took, did not
  apply (the job already started or ended) or failed (the caller tries it again later).
* Transient trouble is not a job state: an unreachable controller or a timed-out command raises
  :class:`BackendUnavailable`; the caller retries later and never marks jobs failed or lost for it.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

EXIT_CODE_FILE = "exit_code"
"""Written atomically (temp file + rename) by the job shim when the command ends."""
CANCELLED_FILE = "cancelled"
"""Written by :meth:`BatchBackend.cancel` before the job is killed, so a cancelled job the batch
system no longer lists still resolves to cancelled."""
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
"""In the element folder: the job's output and error (on Slurm and HTCondor links, made by the
job shim, to the batch system's files in ``logs/``)."""
JOB_SHIM = Path(__file__).with_name("job_shim.sh")
"""The job shim of the batch systems (Slurm, HTCondor): makes the element folder, runs the
command in it, writes ``exit_code``."""
LOGS_DIR = "logs"
"""In the array folder, made once per submission: the batch system's output and error files,
``<batch id>.out``/``.err``. They must be named before the job starts, when its element folder
does not exist yet."""

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_ENV = frozenset(
    {"OPOS_JOB_DIR", "OPOS_ARRAY_INDEX", "OPOS_ARRAY_DIR", "OPOS_ARRAY_OFFSET"}
)
"""Set by the backends themselves; a spec may not override them."""

DEFAULT_TIMEOUT_S = 60.0
JOB_READABLE = 0o644
"""Mode of the files a job reads (its array's descriptions): the job runs as another user
than the service (the local job user, the batch account), which must be able to read them."""


class BatchState(StrEnum):
    """State of one array element as the batch system sees it (job states minus ``planned``)."""

    QUEUED = "queued"
    RUNNING = "running"
    HELD = "held"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"


ACTIVE_STATES: frozenset[BatchState] = frozenset(
    {BatchState.QUEUED, BatchState.RUNNING, BatchState.HELD}
)
"""The batch system still owns the job: keep polling."""
TERMINAL_STATES: frozenset[BatchState] = frozenset(
    {BatchState.SUCCEEDED, BatchState.FAILED, BatchState.CANCELLED, BatchState.LOST}
)
"""The job will not change any more: stop polling."""


class ControlOutcome(StrEnum):
    """What a control did to one job."""

    DONE = "done"  # the batch system took it
    SKIPPED = "skipped"  # nothing to do: the job started, ended, or is not known any more
    FAILED = "failed"  # the batch system refused it: tried again by the next cycle


class ControlAnswer(NamedTuple):
    outcome: ControlOutcome
    detail: str = ""


ControlAnswers = dict[str, ControlAnswer]

PRIORITY_LEVELS = range(4)
"""Priority levels the backends map to their own scale: 0 (low) .. 3 (critical)."""

PLACEMENT_NAME_RE = re.compile(r"^[A-Za-z0-9_.@+-]{1,200}$")
"""A Slurm partition, account or QOS, an HTCondor accounting group: safe on a command line."""


def check_placement_name(name: str, value: str | None) -> None:
    if value is not None and not PLACEMENT_NAME_RE.match(value):
        raise ValueError(f"invalid {name}: {value!r}")


@dataclass(frozen=True)
class Placement:
    """Where jobs run: Slurm partition, account and QOS (HTCondor: accounting group and
    requirements), and the partitions they must avoid. ``None``: the site default."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    avoid_partitions: tuple[str, ...] = ()
    requirements: str | None = None  # an HTCondor ClassAd expression

    def __post_init__(self) -> None:
        for name in ("partition", "account", "qos"):
            check_placement_name(name, getattr(self, name))
        avoid = tuple(self.avoid_partitions)
        for value in avoid:
            check_placement_name("avoided partition", value)
        if self.partition and self.partition in avoid:
            raise ValueError(f"partition {self.partition!r} is also one to avoid")
        object.__setattr__(self, "avoid_partitions", avoid)
        if self.requirements is not None and (
            "\n" in self.requirements or "\0" in self.requirements
        ):
            raise ValueError("requirements must be one line")


class BackendError(Exception):
    """The batch system refused or could not do what was asked (bad request, unknown id, ...)."""


class BackendUnavailable(BackendError):
    """Transient trouble: controller unreachable, command timed out. Retry later.

    Never map this to a job state: a job is not failed or lost because its batch system did not
    answer this minute.
    """


@dataclass(frozen=True)
class ArraySpec:
    """One array submission: ``size`` elements running the same command in their own folders.

    ``array_dir`` exists (the caller made it, with whatever the command reads: the array's job
    descriptions, say). Element ``i`` runs in ``array_dir/i``, which the backend makes when the
    element starts (before that it does not exist). Each element runs ``argv`` as an argument
    list (never joined into a shell string) with its folder as working directory and the
    environment variables ``OPOS_JOB_DIR``, ``OPOS_ARRAY_INDEX`` and ``environment``.
    """

    token: str
    array_dir: Path
    size: int
    argv: list[str]
    cores: int = 1
    memory_mb: int = 1024
    walltime_s: int = 3600
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    avoid_partitions: tuple[str, ...] = ()
    requirements: str | None = None
    priority: int | None = None
    """The work's priority level (:data:`PRIORITY_LEVELS`), mapped to the batch system's
    (Slurm nice, HTCondor JobPrio, the local queue's order); ``None``: the default."""
    environment: dict[str, str] = field(default_factory=dict)
    read_paths: tuple[str, ...] = ()
    """What the job reads besides its array folder (the registered code, its inputs): a
    sandboxing backend (local) shows these read-only and hides the rest of the service's
    files; the batch systems rely on the batch account's permissions instead."""

    def __post_init__(self) -> None:
        if not isinstance(self.token, str) or not TOKEN_RE.match(self.token):
            raise ValueError(f"token must match {TOKEN_RE.pattern}: {self.token!r}")
        object.__setattr__(self, "array_dir", Path(self.array_dir).absolute())
        for name in ("size", "cores", "memory_mb", "walltime_s"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer: {value!r}")
        if not isinstance(self.argv, list | tuple) or not self.argv:
            raise ValueError("argv must be a non-empty list of strings")
        if not all(isinstance(a, str) and "\0" not in a for a in self.argv) or not self.argv[0]:
            raise ValueError(f"argv must hold strings without NUL bytes: {self.argv!r}")
        object.__setattr__(self, "argv", list(self.argv))
        for key, value in self.environment.items():
            if not isinstance(key, str) or not ENV_NAME_RE.match(key) or key in RESERVED_ENV:
                raise ValueError(f"invalid or reserved environment variable name: {key!r}")
            if key.startswith(("SLURM_", "SBATCH_")):
                # Slurm sets SLURM_*, and SBATCH_* in sbatch's environment would change its
                # options (SBATCH_HOLD, SBATCH_ARRAY_INX, ...).
                raise ValueError(f"SLURM_*/SBATCH_* variables belong to Slurm: {key!r}")
            if not isinstance(value, str) or "\0" in value:
                raise ValueError(f"environment value must be a string without NUL: {key}")
        paths = tuple(str(p) for p in self.read_paths)
        if not all(p.startswith("/") and "\0" not in p for p in paths):
            raise ValueError(f"read_paths must be absolute paths: {paths!r}")
        object.__setattr__(self, "read_paths", paths)
        # The same checks as a Placement (names safe on a command line, no avoided
        # partition chosen).
        object.__setattr__(self, "avoid_partitions", self.placement.avoid_partitions)
        if self.priority is not None and self.priority not in PRIORITY_LEVELS:
            raise ValueError(f"priority must be a level 0..3: {self.priority!r}")

    @property
    def placement(self) -> Placement:
        return Placement(
            self.partition, self.account, self.qos, tuple(self.avoid_partitions), self.requirements
        )

    def element_dir(self, index: int) -> Path:
        """The work folder of element ``index``."""
        return self.array_dir / str(index)


class JobRef(NamedTuple):
    """What the caller knows about one submitted element: its batch id and its work folder.

    The folder is needed to resolve jobs the batch system no longer lists (``exit_code``).
    It may come as a string: the poller passes one for every job in flight and backends
    look at few of them, while making 100,000 ``Path`` objects cost a poll cycle a second.
    A named tuple, not a dataclass: the poller makes one per job in flight, and a frozen
    dataclass's ``__init__`` took several times as long (bench/poll.py).
    """

    batch_id: str
    workdir: Path | str


class JobStatus(NamedTuple):
    """State of one element; ``exit_code`` once known, ``reason`` a short human explanation.

    A named tuple: a backend makes one per job in flight on every poll (100,000 a minute),
    and a frozen dataclass's ``__init__`` took several times as long (bench/poll.py).
    """

    state: BatchState
    exit_code: int | None = None
    reason: str = ""


class JobUsage(NamedTuple):
    """What one finished element used, as its batch system measured it.

    ``cpu_s`` is the CPU time the job consumed (user + system, all its processes);
    ``core_s`` the cores reserved times the wall time (what an allocation is charged; None
    when the batch system does not say, the caller then takes cores x wall);
    ``max_rss_kb`` the peak resident memory (None when never sampled: Slurm samples every few
    seconds, a job shorter than that has none); ``state`` the batch system's own final state
    word (COMPLETED, FAILED, OUT_OF_MEMORY, ...) and ``exit_code`` as it printed it.
    ``final`` is False when the batch system has not settled the figures yet (Slurm's
    accounting lags behind squeue): the caller asks again later.
    """

    source: str
    cpu_s: float | None = None
    wall_s: float | None = None
    core_s: float | None = None
    max_rss_kb: int | None = None
    state: str = ""
    exit_code: str = ""
    final: bool = True


class StatusAnswer(dict[str, JobStatus]):
    """A backend's answer to :meth:`BatchBackend.status`: the status of each batch id, plus
    the batch ids by state (``by_state``), kept as the answer is filled.

    The poller compares the answer with its view of the jobs in flight state by state, as
    set differences: with 100,000 jobs in flight and a few hundred changed, one dictionary
    lookup and comparison per job in Python was most of a poll (bench/poll.py), while a
    set difference runs in C. The backend makes ``by_state`` while it builds the answer,
    which it walks anyway. Filled through item assignment (``answer[batch_id] = status``);
    ``update`` and the other bulk methods of ``dict`` do not keep ``by_state`` and must not
    be used on it (``consistent`` tells; the poller falls back to the lookups then).
    """

    def __init__(self) -> None:
        super().__init__()
        self.by_state: dict[str, set[str]] = {}

    def __setitem__(self, batch_id: str, status: JobStatus) -> None:
        old = self.get(batch_id)
        if old is not None:
            self.by_state[old.state].discard(batch_id)
        dict.__setitem__(self, batch_id, status)
        ids = self.by_state.get(status.state)
        if ids is None:
            ids = self.by_state[status.state] = set()
        ids.add(batch_id)

    def consistent(self) -> bool:
        """Whether ``by_state`` holds every batch id of the answer (one count per state)."""
        return sum(map(len, self.by_state.values())) == len(self)


class BatchBackend(ABC):
    """A batch system: submit arrays, poll them in bulk, cancel, and find them again by token."""

    name: str = ""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout = float(timeout)

    @abstractmethod
    def submit(self, spec: ArraySpec, start: int = 0) -> list[str]:
        """Submit elements ``start`` .. ``spec.size - 1`` of the array; return their batch ids.

        One batch-system call per array (a few when a site limit forces splitting). ``start`` is
        for resuming a submission that :meth:`find` shows was cut short after its first elements;
        normally it is 0. Raises :class:`BackendUnavailable` when the call may or may not have
        reached the batch system: the caller must then :meth:`find` the token before retrying.
        """

    @abstractmethod
    def status(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        """Return the state of every job, keyed by batch id, from one bulk query: a
        :class:`StatusAnswer`, so the poller can compare it state by state (a plain ``dict``
        works, more slowly).

        Jobs the batch system no longer lists are resolved from their folder's ``exit_code``
        file (succeeded when 0, failed otherwise), else reported lost.
        """

    @abstractmethod
    def cancel(self, batch_ids: Sequence[str]) -> None:
        """Cancel the jobs (one call). Finished or unknown ids are ignored."""

    def usage(self, jobs: Sequence[JobRef]) -> dict[str, JobUsage]:
        """What the finished jobs used, keyed by batch id, from one bulk query.

        Jobs the backend has no figures for are left out. The default: none (a backend that
        cannot measure). Raises :class:`BackendUnavailable` on transient trouble.
        """
        return {}

    @abstractmethod
    def hold(self, batch_ids: Sequence[str]) -> ControlAnswers:
        """Hold queued jobs so they do not start (a pause); one answer per id."""

    @abstractmethod
    def release(self, batch_ids: Sequence[str]) -> ControlAnswers:
        """Release jobs :meth:`hold` held (a resume); one answer per id."""

    @abstractmethod
    def set_priority(self, batch_ids: Sequence[str], level: int) -> ControlAnswers:
        """Give queued jobs the priority ``level`` (0 low .. 3 critical); one answer per id."""

    @abstractmethod
    def move(self, batch_ids: Sequence[str], placement: Placement) -> ControlAnswers:
        """Move jobs that have not started to ``placement``; one answer per id."""

    @abstractmethod
    def find(self, token: str) -> list[str]:
        """Batch ids already submitted with ``token``, in element order; empty when none.

        The ids cover elements ``0 .. len(result) - 1``. Raises :class:`BackendError` when only
        disconnected parts of the array can be found, since then neither adopting nor
        resubmitting is safe without a human.
        """


# --- helpers shared by the backends -------------------------------------------------------


def run_command(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a batch-system command: argument list, no shell, bounded time.

    A timeout raises :class:`BackendUnavailable`; a missing command raises
    :class:`BackendError` (a configuration problem, retrying will not help). The caller checks
    the return code, since only it knows which errors are transient.
    """
    try:
        return subprocess.run(  # noqa: S603 - argument list, no shell
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BackendUnavailable(f"{argv[0]} timed out after {timeout:g}s") from exc
    except OSError as exc:
        raise BackendError(f"cannot run {argv[0]}: {exc}") from exc


def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` so readers see the old content or the new, never a part.

    The file is private (0600) unless ``mode`` says otherwise: what a job reads must be
    readable by the job user or batch account (:data:`JOB_READABLE`)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            if mode is not None:
                os.fchmod(fh.fileno(), mode)
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_array_dir(spec: ArraySpec) -> None:
    """The array folder must exist (with the caller's inputs); ``logs/`` is made in it."""
    if not spec.array_dir.is_dir():
        raise BackendError(f"array folder missing: {spec.array_dir}")
    try:
        (spec.array_dir / LOGS_DIR).mkdir(exist_ok=True)
    except OSError as exc:
        raise BackendError(f"cannot make {spec.array_dir / LOGS_DIR}: {exc}") from exc


def mark_cancelled(workdir: Path, text: str) -> None:
    """Write the cancel marker into an element folder, making the folder if the element never
    started (so a cancelled element the batch system forgets resolves to cancelled, not lost)."""
    workdir.mkdir(exist_ok=True)
    write_atomic(workdir / CANCELLED_FILE, text)


def read_exit_code(workdir: Path | str) -> int | None:
    """The exit status the job shim recorded in ``workdir``, or None when there is none yet."""
    try:
        text = (Path(workdir) / EXIT_CODE_FILE).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return int(text)
    except ValueError:
        return None


def resolve_from_disk(workdir: Path | str) -> JobStatus | None:
    """Resolve a job from its folder alone; None when the folder says nothing.

    A zero exit code wins over a cancel marker (the job finished before the cancel reached
    it); otherwise a cancel marker makes it cancelled, a non-zero code failed.
    """
    workdir = Path(workdir)
    code = read_exit_code(workdir)
    if code == 0:
        return JobStatus(BatchState.SUCCEEDED, 0)
    if (workdir / CANCELLED_FILE).exists():
        return JobStatus(BatchState.CANCELLED, code, "cancelled")
    if code is not None:
        return JobStatus(BatchState.FAILED, code, f"exit code {code}")
    return None


def resolve_absent(workdir: Path | str, why: str) -> JobStatus:
    """Status of a job the batch system does not list: from its folder, else lost (also when
    the folder does not exist: the element never started)."""
    return resolve_from_disk(workdir) or JobStatus(BatchState.LOST, None, why)


def check_token(token: str) -> str:
    """Validate a token before it goes into a query or a file name."""
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        raise ValueError(f"token must match {TOKEN_RE.pattern}: {token!r}")
    return token


# The only variables of the worker's environment that reach a job. Everything
# else (DATABASE_URL, SECRET_KEY, broker credentials, ...) stays with the
# worker: production code owned by an experiment must never see our secrets.
JOB_ENV_ALLOWLIST = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR")


def job_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A job's environment: the allow-listed variables of ours, plus ``extra``."""
    env = {key: os.environ[key] for key in JOB_ENV_ALLOWLIST if key in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    if extra:
        env.update(extra)
    return env


def check_start(spec: ArraySpec, start: int) -> None:
    """``start`` must name an element of the array."""
    if not isinstance(start, int) or not 0 <= start < spec.size:
        raise ValueError(f"start must be in 0..{spec.size - 1}: {start!r}")


def default_state_dir(backend: str) -> Path:
    """Where a backend keeps its on-disk records unless told otherwise."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "opos" / "batch" / backend

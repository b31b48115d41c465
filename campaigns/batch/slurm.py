"""Slurm backend: one ``sbatch --array`` per array, one ``squeue --json`` per poll.

Submission: ``sbatch --parsable --array=0-(m-1) --job-name=<token> --comment=<token>:<offset>:<m>
--output=<array_dir>/logs/%A_%a.out ... job_shim.sh ARGV...``. The fixed shim :file:`job_shim.sh`
computes its element index as ``OPOS_ARRAY_OFFSET`` + ``SLURM_ARRAY_TASK_ID`` (both variables
reach the job through the environment sbatch exports; nothing is built into an ``--export``
string), makes the element folder ``OPOS_ARRAY_DIR/<index>``, links the log files into it as
``stdout.log``/``stderr.log``, runs ARGV there and writes ``exit_code``. Slurm opens the log
files before the shim runs, so they are named by batch id (``%A_%a``) in ``logs/``, a folder
made once per submission. Arrays larger than the site's ``MaxArraySize`` go in chunks of at
most that size, each with its own offset: no per-element file or link (Slurm's patterns cannot
add an offset to ``%a``, and the batch-id names need none). The comment carries token, offset
and chunk size so :meth:`SlurmBackend.find` can rebuild the element order from the batch system
alone.

Batch ids are ``<array job id>_<task id>`` (task ids count from 0 within each chunk).

Polling: Slurm 22.05 (Debian 12) ignores every filter option with ``--json``, so squeue returns
all jobs and we keep ours; newer Slurm honours ``--me --states=all``. A pending array appears as
one compressed record (``array_task_string`` "5-99" or "0,3,6%2") until its tasks start; both
shapes are handled, and so are the field shapes of 22.05 (plain values, ``exit_code`` as a wait
status) and 23.02+ (``{"set": .., "number": ..}``, lists of states, exit code objects).
``sacct --json`` is asked as well, for jobs squeue no longer lists, when the cluster keeps
accounting (``AccountingStorageType`` other than none). Anything else resolves from the element
folder (``exit_code``, ``cancelled``), else lost.

Usage: :meth:`SlurmBackend.usage` asks ``sacct --parsable2`` for the finished jobs' CPU time,
wall time, reserved core time, peak memory, state and exit code (one call per poll for all
of them; see :mod:`campaigns.batch.usage`); without accounting it has nothing to say.

Batch account: with ``job_user`` (``OPOS_SLURM_JOB_USER``) a service running as root submits
with ``sbatch --uid/--gid`` so that the jobs run as that account, never as the service's (the
array folder and its ``logs/`` are handed to it, since the shim makes the element folders and
Slurm writes the logs there); it polls with ``--user`` instead of ``--me``. Without it the
jobs run as whoever runs the worker, which must then not be the account that holds the
service's secrets (README, "Batch accounts").

Records on disk (``state_dir``): ``tokens/<token>.json`` lists the chunks of each submission and
``jobs/<array job id>`` names the token, so that find() still works after squeue forgot a
finished array (MinJobAge) on a cluster without accounting, and cancel() can mark the element
folders of pending tasks (Slurm drops cancelled tasks of a pending array record at once).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .base import (
    DEFAULT_TIMEOUT_S,
    JOB_SHIM,
    LOGS_DIR,
    TERMINAL_STATES,
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
    run_command,
    write_atomic,
)
from .slurm_records import (
    BATCH_ID_RE,
    _expand,
    _nothing_found,
    compress_ids,
    format_walltime,
    parse_chunks,
    parse_job_records,
    parse_sacct_arrays,
)
from .usage import SACCT_FIELDS, parse_sacct_usage

TRANSIENT_ERRORS = (
    "unable to contact slurm controller",
    "socket timed out",
    "connection refused",
    "connection timed out",
    "zero bytes were transmitted",
    "transport endpoint is not connected",
    "temporarily unable",
    "resource temporarily unavailable",
    "communication connection failure",
    "backup controller in standby mode",
    "slurmdbd",
)
"""stderr fragments meaning "ask again later" rather than "this request is wrong"."""

NICE_BY_LEVEL = {3: 0, 2: 1000, 1: 2000, 0: 3000}
"""Priority level -> Slurm nice. Never negative: only an administrator may lower a nice
below zero, and the worker need not be one. Lower nice, higher priority."""

CONTROL_CHUNK = 200
"""Job ids per ``scontrol`` call (its command line stays short)."""

GONE_ERRORS = (
    "already completing or completed",
    "job/step already",
    "invalid job id",
    "no longer pending",
    "job is not pending",
    "not pending",
)
"""scontrol messages meaning the job is past the point a control could change."""


def _batch_account(name: str) -> pwd.struct_passwd:
    """The account jobs are submitted as (``sbatch --uid``, which Slurm allows root only)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise BackendError(f"batch account {name!r} does not exist (OPOS_SLURM_JOB_USER)") from None
    if entry.pw_uid == 0 or entry.pw_uid == os.geteuid():
        raise BackendError(
            f"batch account {name!r} is root or the service's own account: jobs must run "
            "under another account (OPOS_SLURM_JOB_USER)"
        )
    if os.geteuid() != 0:
        raise BackendError(
            f"OPOS_SLURM_JOB_USER={name!r}: submitting as another account (sbatch --uid) needs "
            "the worker to run as root; otherwise run the worker as the batch account's "
            "submitter and leave it unset"
        )
    return entry


class SlurmBackend(BatchBackend):
    """Submits arrays with sbatch and polls them with squeue (and sacct when available)."""

    name = "slurm"

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_array_size: int | None = None,
        state_dir: str | Path | None = None,
        slurm_conf: str | Path | None = None,
        use_sacct: bool | None = None,
        sacct_window_days: int = 30,
        job_user: str | None = None,
    ) -> None:
        super().__init__(timeout=timeout)
        self.job_user = _batch_account(job_user) if job_user else None
        self.sacct_window_days = sacct_window_days
        self._max_array_size = max_array_size
        self._use_sacct = use_sacct
        self.slurm_conf = str(slurm_conf) if slurm_conf else None
        self.state_dir = Path(state_dir) if state_dir else default_state_dir("slurm")
        (self.state_dir / "tokens").mkdir(parents=True, exist_ok=True)
        (self.state_dir / "jobs").mkdir(parents=True, exist_ok=True)
        self._config: dict[str, str] | None = None

    # --- site configuration (read once) --------------------------------------------------------

    def config(self) -> dict[str, str]:
        """``scontrol show config`` as a dict, read once per backend instance."""
        if self._config is None:
            out = self._run(["scontrol", "show", "config"])
            config = {}
            for line in out.splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    config[key.strip()] = value.strip()
            self._config = config
        return self._config

    @property
    def max_array_size(self) -> int:
        """Largest number of tasks in one array (task ids must stay below MaxArraySize)."""
        if self._max_array_size is None:
            self._max_array_size = int(self.config().get("MaxArraySize", "1001"))
        return self._max_array_size

    @property
    def use_sacct(self) -> bool:
        """Whether the cluster keeps accounting that sacct can query."""
        if self._use_sacct is None:
            storage = self.config().get("AccountingStorageType", "accounting_storage/none")
            self._use_sacct = storage not in ("", "accounting_storage/none", "(null)")
        return self._use_sacct

    # --- interface ---------------------------------------------------------------------------

    def submit(self, spec: ArraySpec, start: int = 0) -> list[str]:
        check_start(spec, start)
        check_array_dir(spec)
        step = self.max_array_size
        ids: list[str] = []
        for offset in range(start, spec.size, step):
            count = min(step, spec.size - offset)
            job_id = self._submit_chunk(spec, offset, count)
            ids.extend(f"{job_id}_{task}" for task in range(count))
        return ids

    def status(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        if not jobs:
            return {}
        masters = set()
        for job in jobs:
            match = BATCH_ID_RE.match(job.batch_id)
            if not match:
                raise BackendError(f"not a Slurm batch id: {job.batch_id!r}")
            masters.add(match.group(1))
        listed = parse_job_records(self._squeue(), masters)
        missing = {j.batch_id.split("_")[0] for j in jobs if j.batch_id not in listed}
        if missing and self.use_sacct:
            from_sacct = parse_job_records(self._sacct(["--jobs", ",".join(sorted(missing))]))
            listed = {**from_sacct, **listed}
        result = StatusAnswer()
        for job in jobs:
            status = listed.get(job.batch_id)
            if status is None:
                status = resolve_absent(job.workdir, "no longer listed by Slurm")
            elif status.state in TERMINAL_STATES:
                code = read_exit_code(job.workdir)
                if code is not None:  # what the command returned, not the shim's signal
                    status = status._replace(exit_code=code)
            result[job.batch_id] = status
        return result

    def usage(self, jobs: Sequence[JobRef]) -> dict[str, JobUsage]:
        """sacct's figures for the jobs (one call); empty on a cluster without accounting."""
        if not jobs or not self.use_sacct:
            return {}
        masters = set()
        for job in jobs:
            match = BATCH_ID_RE.match(job.batch_id)
            if not match:
                raise BackendError(f"not a Slurm batch id: {job.batch_id!r}")
            masters.add(match.group(1))
        who = [f"--user={self.job_user.pw_name}"] if self.job_user else []
        out = self._run(
            [
                "sacct",
                "--parsable2",
                "--noheader",
                "--noconvert",
                *who,
                f"--format={','.join(SACCT_FIELDS)}",
                f"--jobs={','.join(sorted(masters, key=int))}",
            ]
        )
        wanted = {job.batch_id for job in jobs}
        return {k: v for k, v in parse_sacct_usage(out).items() if k in wanted}

    def cancel(self, batch_ids: Sequence[str]) -> None:
        if not batch_ids:
            return
        targets = compress_ids(batch_ids)
        for value in batch_ids:
            workdir = self._element_dir(value)
            if workdir is not None and read_exit_code(workdir) is None:
                with contextlib.suppress(OSError):
                    mark_cancelled(workdir, "scancel\n")
        self._run(
            ["scancel", *targets],
            ignore=("invalid job id", "already completing or completed", "job/step already"),
        )

    def hold(self, batch_ids: Sequence[str]) -> ControlAnswers:
        # uhold: a user hold (Reason=JobHeldUser) even when the worker runs as root, so the
        # pause is told apart from an administrator's hold and released by our release.
        return self._control(
            batch_ids,
            lambda ids: ["scontrol", "uhold", ",".join(ids)],
            wanted={BatchState.QUEUED},
            already={BatchState.HELD},
        )

    def release(self, batch_ids: Sequence[str]) -> ControlAnswers:
        # Only held jobs: releasing a pending job that is not held resets its nice.
        return self._control(
            batch_ids,
            lambda ids: ["scontrol", "release", ",".join(ids)],
            wanted={BatchState.HELD},
            already={BatchState.QUEUED},
        )

    def set_priority(self, batch_ids: Sequence[str], level: int) -> ControlAnswers:
        nice = NICE_BY_LEVEL[level]
        return self._control(
            batch_ids,
            lambda ids: ["scontrol", "update", f"JobId={ids[0]}", f"Nice={nice}"],
            wanted={BatchState.QUEUED, BatchState.HELD},
            one_each=True,
        )

    def move(self, batch_ids: Sequence[str], placement: Placement) -> ControlAnswers:
        fields = [f"Partition={self._partition_list(placement)}"]
        if placement.account:
            fields.append(f"Account={placement.account}")
        if placement.qos:
            fields.append(f"QOS={placement.qos}")
        return self._control(
            batch_ids,
            lambda ids: ["scontrol", "update", f"JobId={ids[0]}", *fields],
            wanted={BatchState.QUEUED, BatchState.HELD},
            one_each=True,
        )

    def placement_options(self, placement: Placement) -> list[str]:
        """sbatch options of ``placement``: partition (or every partition but the avoided
        ones), account, QOS."""
        argv = []
        if placement.partition or placement.avoid_partitions:
            argv.append(f"--partition={self._partition_list(placement)}")
        if placement.account:
            argv.append(f"--account={placement.account}")
        if placement.qos:
            argv.append(f"--qos={placement.qos}")
        return argv

    def partitions(self) -> list[str]:
        """The cluster's partitions (``sinfo``), the default one first."""
        names: list[str] = []
        for line in self._run(["sinfo", "--noheader", "--format=%P"]).split():
            name = line.strip()
            default = name.endswith("*")
            name = name.rstrip("*")
            if name and name not in names:
                names.insert(0, name) if default else names.append(name)
        return names

    def find(self, token: str) -> list[str]:
        check_token(token)
        chunks: dict[int, tuple[str, int]] = {}
        record = self._read_token(token)
        if record:
            for chunk in record["chunks"]:
                chunks[chunk["offset"]] = (chunk["job"], chunk["count"])
        found = parse_chunks(self._squeue(["--name", token]), token)
        accounted: list[dict[str, Any]] = []
        if self.use_sacct:
            window = ["--name", token, f"--starttime=now-{self.sacct_window_days}days"]
            accounted = self._sacct(window)
            found = {**parse_chunks(accounted, token), **found}
        for offset, chunk in found.items():
            if chunks.setdefault(offset, chunk) != chunk:
                raise BackendError(
                    f"token {token}: elements from {offset} submitted twice "
                    f"(jobs {chunks[offset][0]} and {chunk[0]})"
                )
        # Arrays only accounting still knows, without their comment: the submission a crash
        # cut short before it was recorded. They follow the known chunks in job id order.
        known = {job for job, _ in chunks.values()}
        extra = parse_sacct_arrays(accounted, token)
        end = max((offset + count for offset, (_, count) in chunks.items()), default=0)
        for job in sorted(set(extra) - known, key=int):
            chunks[end] = (job, extra[job])
            end += extra[job]
        ids: list[str] = []
        for offset in sorted(chunks):
            job_id, count = chunks[offset]
            if offset != len(ids):
                raise BackendError(
                    f"token {token}: elements {len(ids)}..{offset - 1} not found but later "
                    "ones were"
                )
            ids.extend(f"{job_id}_{task}" for task in range(count))
        return ids

    # --- internals ---------------------------------------------------------------------------

    def _partition_list(self, placement: Placement) -> str:
        """The partition to submit or move to: the chosen one, else every partition of the
        cluster but the avoided ones (Slurm starts the job in whichever frees first)."""
        if placement.partition:
            return placement.partition
        allowed = [p for p in self.partitions() if p not in placement.avoid_partitions]
        if not allowed:
            raise BackendError(
                f"every partition of the cluster is to be avoided: {placement.avoid_partitions}"
            )
        return ",".join(allowed)

    def _control(
        self,
        batch_ids: Sequence[str],
        argv_for: Callable[[list[str]], list[str]],
        wanted: set[BatchState],
        already: set[BatchState] = frozenset(),
        one_each: bool = False,
    ) -> ControlAnswers:
        """Apply a control to the jobs in a ``wanted`` state; answer every id.

        One squeue tells which jobs the control still applies to (a job that started or
        ended is skipped; one ``already`` in the state the control makes is done). The
        others are changed in a few calls; when a call fails, its jobs are tried one by
        one so that each gets its own answer.
        """
        answers: ControlAnswers = {}
        if not batch_ids:
            return answers
        masters = set()
        for value in batch_ids:
            match = BATCH_ID_RE.match(value)
            if not match:
                raise BackendError(f"not a Slurm batch id: {value!r}")
            masters.add(match.group(1))
        listed = parse_job_records(self._squeue(), masters)
        targets = []
        for value in batch_ids:
            status = listed.get(value)
            if status is None:
                answers[value] = ControlAnswer(ControlOutcome.SKIPPED, "no longer queued")
            elif status.state in already:
                answers[value] = ControlAnswer(ControlOutcome.DONE, f"already {status.state}")
            elif status.state not in wanted:
                answers[value] = ControlAnswer(ControlOutcome.SKIPPED, f"job is {status.state}")
            else:
                targets.append(value)
        groups = (
            [[expr] for expr in compress_ids(targets)]
            if one_each
            else [targets[i : i + CONTROL_CHUNK] for i in range(0, len(targets), CONTROL_CHUNK)]
        )
        for group in groups:
            members = [i for expr in group for i in _expand(expr)]
            try:
                self._run(argv_for(group))
            except BackendUnavailable:
                raise
            except BackendError:
                for value in members:
                    answers[value] = self._control_one(value, argv_for)
                continue
            for value in members:
                answers[value] = ControlAnswer(ControlOutcome.DONE)
        return answers

    def _control_one(self, value: str, argv_for: Callable[[list[str]], list[str]]) -> ControlAnswer:
        try:
            self._run(argv_for([value]))
        except BackendUnavailable:
            raise
        except BackendError as exc:
            message = str(exc)
            if any(fragment in message.lower() for fragment in GONE_ERRORS):
                return ControlAnswer(ControlOutcome.SKIPPED, message[:300])
            return ControlAnswer(ControlOutcome.FAILED, message[:300])
        return ControlAnswer(ControlOutcome.DONE)

    def _env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        if self.slurm_conf:
            env["SLURM_CONF"] = self.slurm_conf
        if extra:
            env.update(extra)
        return env

    def _run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        ignore: Sequence[str] = (),
    ) -> str:
        """Run a Slurm command; classify failures as transient or not."""
        done = run_command(argv, timeout=self.timeout, env=env or self._env())
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip()
            lowered = message.lower()
            if (
                ignore
                and lowered
                and all(
                    any(fragment in line for fragment in ignore)
                    for line in lowered.splitlines()
                    if line.strip()
                )
            ):
                return done.stdout
            if any(fragment in lowered for fragment in TRANSIENT_ERRORS):
                raise BackendUnavailable(f"{argv[0]}: {message}")
            raise BackendError(f"{argv[0]} failed ({done.returncode}): {message}")
        return done.stdout

    def _json(self, argv: Sequence[str]) -> list[dict[str, Any]]:
        out = self._run(argv)
        try:
            data = json.loads(out)
        except json.JSONDecodeError as exc:
            raise BackendUnavailable(f"{argv[0]} printed no valid JSON: {exc}") from exc
        # sacct --json answers a query that matches no job with an "error" (9003,
        # "Nothing found"): an empty answer, not trouble.
        errors = [e for e in data.get("errors") or [] if e and not _nothing_found(e)]
        if errors:
            raise BackendUnavailable(f"{argv[0]} reported errors: {errors}")
        return list(data.get("jobs") or [])

    def _squeue(self, filters: Sequence[str] = ()) -> list[dict[str, Any]]:
        # Slurm 22.05 ignores the filters with --json; newer versions apply them.
        who = f"--user={self.job_user.pw_name}" if self.job_user else "--me"
        return self._json(["squeue", "--json", who, "--states=all", *filters])

    def _sacct(self, filters: Sequence[str]) -> list[dict[str, Any]]:
        who = [f"--user={self.job_user.pw_name}"] if self.job_user else []
        return self._json(["sacct", "--json", "--allocations", *who, *filters])

    def _submit_chunk(self, spec: ArraySpec, offset: int, count: int) -> str:
        if "\\" in str(spec.array_dir):
            # A backslash switches off all of sbatch's filename patterns (%a included).
            raise BackendError(f"Slurm cannot take a backslash in the path: {spec.array_dir}")
        pattern = str(spec.array_dir / LOGS_DIR).replace("%", "%%")
        argv = [
            "sbatch",
            "--parsable",
            f"--array=0-{count - 1}",
            f"--job-name={spec.token}",
            f"--comment={spec.token}:{offset}:{count}",
            f"--chdir={spec.array_dir}",
            f"--output={pattern}/%A_%a.out",
            f"--error={pattern}/%A_%a.err",
            "--ntasks=1",
            f"--cpus-per-task={spec.cores}",
            f"--mem={spec.memory_mb}M",
            f"--time={format_walltime(spec.walltime_s)}",
            "--export=ALL",
        ]
        if self.job_user:
            argv += [f"--uid={self.job_user.pw_uid}", f"--gid={self.job_user.pw_gid}"]
            for folder in (spec.array_dir, spec.array_dir / LOGS_DIR):
                os.chown(folder, self.job_user.pw_uid, self.job_user.pw_gid)
        argv += self.placement_options(spec.placement)
        if spec.priority is not None:
            argv.append(f"--nice={NICE_BY_LEVEL[spec.priority]}")
        argv += [str(JOB_SHIM), *spec.argv]
        # sbatch exports its own environment to the job (--export=ALL), so it
        # gets the allow-listed one: the worker's secrets stay with the worker.
        env = job_environment(
            {
                **spec.environment,
                "OPOS_ARRAY_DIR": str(spec.array_dir),
                "OPOS_ARRAY_OFFSET": str(offset),
            }
        )
        if self.job_user:
            # The job's own account, not the worker's (sbatch exports these to the job).
            env["HOME"] = self.job_user.pw_dir
            env["USER"] = env["LOGNAME"] = self.job_user.pw_name
        if self.slurm_conf or os.environ.get("SLURM_CONF"):
            env["SLURM_CONF"] = self.slurm_conf or os.environ["SLURM_CONF"]
        out = self._run(argv, env=env).strip()
        job_id = out.split(";", 1)[0].strip()
        if not job_id.isdigit():
            raise BackendError(f"sbatch printed no job id: {out!r}")
        self._record_chunk(spec, offset, count, job_id)
        return job_id

    def _record_chunk(self, spec: ArraySpec, offset: int, count: int, job_id: str) -> None:
        record = self._read_token(spec.token) or {
            "token": spec.token,
            "array_dir": str(spec.array_dir),
            "chunks": [],
        }
        record["chunks"] = [c for c in record["chunks"] if c["offset"] != offset]
        record["chunks"].append({"offset": offset, "count": count, "job": job_id})
        write_atomic(self.state_dir / "jobs" / job_id, f"{spec.token}\n")
        write_atomic(self.state_dir / "tokens" / f"{spec.token}.json", json.dumps(record))

    def _read_token(self, token: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.state_dir / "tokens" / f"{token}.json").read_text())
        except FileNotFoundError:
            return None

    def _element_dir(self, batch_id: str) -> Path | None:
        """The element folder of a batch id, from the records on disk (None if unknown)."""
        match = BATCH_ID_RE.match(batch_id)
        if not match or match.group(2) is None:
            return None
        try:
            token = (self.state_dir / "jobs" / match.group(1)).read_text().strip()
        except FileNotFoundError:
            return None
        record = self._read_token(token)
        for chunk in (record or {}).get("chunks", []):
            if chunk["job"] == match.group(1):
                return Path(record["array_dir"]) / str(chunk["offset"] + int(match.group(2)))
        return None

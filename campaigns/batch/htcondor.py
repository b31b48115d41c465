"""HTCondor backend through the ``htcondor2`` bindings: one cluster of N procs per array.

Submission: one :class:`htcondor2.Submit` description queued ``count`` times. The executable is
the fixed job shim (:file:`job_shim.sh`, shared with Slurm), the arguments the command (argv[0]
resolved on the submit host) in the submit language's quoted syntax, no shell; ``initialdir`` is
the array folder. The shim makes the element folder ``array_dir/<index>`` (``index`` =
``$(Process) + start``, passed as ``OPOS_ARRAY_INDEX``) when the element starts, runs the
command there and writes ``exit_code``: nothing per element is made at submission. stdout and
stderr go to ``logs/<cluster>.<proc>.out``/``.err`` (named before the job starts; the shim links
them into the element folder), the job event log of the whole cluster to ``condor.log``. The
token is the job attribute ``OposToken`` and the element index ``OposIndex``, so :meth:`find`
rebuilds the element order from the schedd. Status: one ``schedd.query`` over the clusters
asked about, then one ``schedd.history`` for the jobs no longer in the queue, then the element
folder
(``exit_code``/``cancelled``), else lost.

Assumptions: a shared filesystem (element folders visible on execute nodes;
``should_transfer_files = NO``); ``executable`` is resolved on the submit host and must exist at
the same path on execute nodes. ``partition``, ``qos`` and the partitions to avoid have no
HTCondor meaning and are ignored; ``account`` becomes ``accounting_group``, ``requirements``
the job's ``requirements``, the priority level ``priority`` (``JobPrio``); ``walltime_s``
becomes ``allowed_job_duration``. Controls: hold and release through ``schedd.act``, priority
and placement through ``schedd.edit`` (``JobPrio``, ``AccountingGroup``, ``Requirements``).
The exit code comes from the job ad (``ExitCode``, ``ExitBySignal``/``ExitSignal``); a job the
schedd no longer knows resolves from the ``exit_code`` the shim wrote in its folder.

What is tested and what is not (tests/campaigns/test_batch_htcondor.py): no HTCondor pool runs in
our test environment, so the schedd calls (``submit``, ``query``, ``history``, ``act``) are not
exercised. Tested for real: the submit description we build, as parsed and macro-expanded by
``htcondor2.Submit`` itself (initialdir per element, environment, resources, attributes); the
argument quoting of shell metacharacters, checked by splitting our ``arguments`` value with
HTCondor's own ClassAd function ``argsToList``; the ClassAd -> state mapping on real
``classad2.ClassAd`` objects for every ``JobStatus`` value. Since submit-language macro
expansion cannot pass every string literally (``$$`` and ``$(DOLLAR)`` are special), the
description builder expands its own output with ``htcondor2.Submit.expand`` and refuses values
that do not come back unchanged.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .base import (
    DEFAULT_TIMEOUT_S,
    JOB_SHIM,
    LOGS_DIR,
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
    resolve_absent,
)
from .usage import HTCONDOR_USAGE_ATTRIBUTES, usage_from_ad

EVENT_LOG_FILE = "condor.log"
JOBPRIO_BY_LEVEL = {3: 15, 2: 10, 1: 5, 0: 0}
"""Priority level -> ``JobPrio`` (higher runs first among one user's jobs)."""
INDEX_MACRO = "opos_index"
"""Submit variable holding the element index expression ``$(Process) + start``."""

PROJECTION = [
    "ClusterId",
    "ProcId",
    "JobStatus",
    "ExitCode",
    "ExitBySignal",
    "ExitSignal",
    "HoldReason",
    "RemoveReason",
    "OposIndex",
]


# --- pure functions (no pool needed) ---------------------------------------------------------


def escape_macros(text: str) -> str:
    """Make ``text`` survive submit-language macro expansion (``$`` -> ``$(DOLLAR)``)."""
    if "\n" in text or "\r" in text:
        raise BackendError(f"HTCondor submit values cannot contain newlines: {text!r}")
    return text.replace("$", "$(DOLLAR)")


def _quote_v2(token: str) -> str:
    """One argument or environment entry in the new (V2) quoted syntax, before macro escaping.

    Single quotes around everything (so spaces and shell metacharacters are literal), a single
    quote doubled inside them, a double quote doubled for the surrounding double-quoted string.
    """
    return "'" + token.replace("'", "''").replace('"', '""') + "'"


def format_arguments(args: Sequence[str]) -> str:
    """``arguments`` value for ``args``: ``"'a' 'b c' '$(DOLLAR)(x)'"``."""
    return '"' + " ".join(escape_macros(_quote_v2(a)) for a in args) + '"'


def format_environment(env: Mapping[str, str], raw: Mapping[str, str] | None = None) -> str:
    """``environment`` value: ``env`` values quoted literally, ``raw`` values kept as macros."""
    entries = [f"{name}={escape_macros(_quote_v2(value))}" for name, value in env.items()]
    entries += [f"{name}={_quote_v2(value)}" for name, value in (raw or {}).items()]
    return '"' + " ".join(entries) + '"'


def resolve_executable(name: str) -> str:
    """Absolute path of argv[0] on the submit host (HTCondor needs one; no PATH search)."""
    if Path(name).is_absolute():
        return name
    found = shutil.which(name)
    if not found:
        raise BackendError(f"executable not found on PATH: {name!r}")
    return str(Path(found).absolute())


def command(spec: ArraySpec) -> list[str]:
    """What the shim runs: argv with argv[0] resolved here (the job gets no PATH search)."""
    return [resolve_executable(spec.argv[0]), *spec.argv[1:]]


def build_submit_description(spec: ArraySpec, start: int = 0) -> dict[str, str]:
    """The submit description (submit language, as a dict) for elements ``start``.. of ``spec``.

    Queue it ``spec.size - start`` times; proc ``p`` is element ``start + p``.
    """
    check_start(spec, start)
    array_dir = escape_macros(str(spec.array_dir))
    description = {
        "universe": "vanilla",
        "executable": escape_macros(str(JOB_SHIM)),
        "transfer_executable": "false",
        "arguments": format_arguments(command(spec)),
        INDEX_MACRO: f"$(Process) + {start}",
        "initialdir": array_dir,
        "output": f"{LOGS_DIR}/$(Cluster).$(Process).out",
        "error": f"{LOGS_DIR}/$(Cluster).$(Process).err",
        "log": EVENT_LOG_FILE,
        "should_transfer_files": "NO",
        "request_cpus": str(spec.cores),
        "request_memory": f"{spec.memory_mb}MB",
        "allowed_job_duration": str(spec.walltime_s),
        "environment": format_environment(
            spec.environment,
            raw={
                "OPOS_ARRAY_DIR": array_dir,
                "OPOS_ARRAY_INDEX": f"$INT({INDEX_MACRO})",
                "OPOS_LOG_NAME": "$(Cluster).$(Process)",
            },
        ),
        "+OposToken": f'"{spec.token}"',
        "+OposIndex": f"$INT({INDEX_MACRO})",
    }
    if spec.account:
        description["accounting_group"] = spec.account
    if spec.requirements:
        description["requirements"] = spec.requirements
    if spec.priority is not None:
        description["priority"] = str(JOBPRIO_BY_LEVEL[spec.priority])
    return description


def make_submit(spec: ArraySpec, start: int = 0) -> Any:
    """``htcondor2.Submit`` for the array, checked by expanding it with HTCondor itself.

    Raises :class:`BackendError` when a value would not reach the job literally.
    """
    import htcondor2

    description = build_submit_description(spec, start)
    submit = htcondor2.Submit(description)
    # Expansion happens with Process = 0, i.e. for element `start`.
    expected = {
        "executable": str(JOB_SHIM),
        "arguments": '"' + " ".join(_quote_v2(a) for a in command(spec)) + '"',
        "initialdir": str(spec.array_dir),
    }
    for key, value in expected.items():
        if submit.expand(key) != value:
            raise BackendError(
                f"HTCondor macro expansion would change {key}: {submit.expand(key)!r}; "
                "'$$' and '$(DOLLAR)' cannot be passed literally"
            )
    for name, value in spec.environment.items():
        if _quote_v2(value) not in submit.expand("environment"):
            raise BackendError(f"HTCondor macro expansion would change ${name}")
    return submit


def _get(ad: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = ad.get(key, default)
    if hasattr(value, "eval"):  # an unevaluated ExprTree
        value = value.eval(ad)
    return value


def map_job_ad(ad: Mapping[str, Any]) -> JobStatus:
    """JobStatus of a job ClassAd (queue or history)."""
    status = _get(ad, "JobStatus")
    if status == 1:
        return JobStatus(BatchState.QUEUED)
    if status in (2, 6):  # running, transferring output
        return JobStatus(BatchState.RUNNING, None, "transferring output" if status == 6 else "")
    if status == 3:
        return JobStatus(BatchState.CANCELLED, None, str(_get(ad, "RemoveReason", "") or ""))
    if status == 4:
        if _get(ad, "ExitBySignal") is True:
            signal = _get(ad, "ExitSignal")
            code = 128 + signal if isinstance(signal, int) else None
            return JobStatus(BatchState.FAILED, code, f"killed by signal {signal}")
        code = _get(ad, "ExitCode")
        if not isinstance(code, int):
            return JobStatus(BatchState.FAILED, None, "completed without an exit code")
        if code == 0:
            return JobStatus(BatchState.SUCCEEDED, 0)
        return JobStatus(BatchState.FAILED, code, f"exit code {code}")
    if status == 5:
        return JobStatus(BatchState.HELD, None, str(_get(ad, "HoldReason", "") or "held"))
    if status == 7:
        return JobStatus(BatchState.HELD, None, "suspended")
    return JobStatus(BatchState.QUEUED, None, f"unknown JobStatus {status!r}")


def job_id(ad: Mapping[str, Any]) -> str:
    """``<ClusterId>.<ProcId>``."""
    return f"{_get(ad, 'ClusterId')}.{_get(ad, 'ProcId')}"


def order_by_index(ads: Iterable[Mapping[str, Any]], token: str) -> list[str]:
    """Batch ids of ``ads`` in element order (``OposIndex``), checked to be contiguous."""
    by_index: dict[int, str] = {}
    for ad in ads:
        index = _get(ad, "OposIndex")
        if not isinstance(index, int):
            continue
        previous = by_index.setdefault(index, job_id(ad))
        if previous != job_id(ad):
            raise BackendError(
                f"token {token}: element {index} submitted twice ({previous}, {job_id(ad)})"
            )
    if sorted(by_index) != list(range(len(by_index))):
        raise BackendError(f"token {token}: elements found are not contiguous from 0")
    return [by_index[i] for i in range(len(by_index))]


# --- the backend (needs a schedd) ------------------------------------------------------------


class HTCondorBackend(BatchBackend):
    """Submits one cluster per array to a schedd and polls it with query + history."""

    name = "htcondor"

    def __init__(
        self,
        *,
        schedd_name: str | None = None,
        pool: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        super().__init__(timeout=timeout)
        self.schedd_name = schedd_name
        self.pool = pool

    def _schedd(self) -> Any:
        import htcondor2

        try:
            if self.schedd_name or self.pool:
                collector = htcondor2.Collector(self.pool)
                ad = collector.locate(htcondor2.DaemonType.Schedd, self.schedd_name)
                return htcondor2.Schedd(ad)
            return htcondor2.Schedd()
        except Exception as exc:  # the bindings raise HTCondorException and plain ones
            raise BackendUnavailable(f"cannot reach the HTCondor schedd: {exc}") from exc

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the bindings; their errors are communication trouble as far as we can tell."""
        try:
            return func(*args, **kwargs)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendUnavailable(f"HTCondor {what} failed: {exc}") from exc

    def submit(self, spec: ArraySpec, start: int = 0) -> list[str]:
        submit = make_submit(spec, start)
        check_array_dir(spec)
        schedd = self._schedd()
        result = self._call("submit", schedd.submit, submit, count=spec.size - start)
        cluster, first = result.cluster(), result.first_proc()
        return [f"{cluster}.{first + i}" for i in range(result.num_procs())]

    def status(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        if not jobs:
            return {}
        clusters = sorted({self._cluster(j.batch_id) for j in jobs})
        constraint = f"member(ClusterId, {{{', '.join(clusters)}}})"
        schedd = self._schedd()
        ads = self._call("query", schedd.query, constraint, PROJECTION)
        listed = {job_id(ad): map_job_ad(ad) for ad in ads}
        missing = [j for j in jobs if j.batch_id not in listed]
        if missing:
            gone = sorted({self._cluster(j.batch_id) for j in missing})
            history_constraint = f"member(ClusterId, {{{', '.join(gone)}}})"
            for ad in self._call("history", schedd.history, history_constraint, PROJECTION):
                listed.setdefault(job_id(ad), map_job_ad(ad))
        result = StatusAnswer()
        for j in jobs:
            result[j.batch_id] = listed.get(j.batch_id) or resolve_absent(
                j.workdir, "unknown to the schedd and its history"
            )
        return result

    def usage(self, jobs: Sequence[JobRef]) -> dict[str, JobUsage]:
        """The finished jobs' ClassAd figures, from the schedd's history (one query)."""
        if not jobs:
            return {}
        clusters = sorted({self._cluster(j.batch_id) for j in jobs})
        constraint = f"member(ClusterId, {{{', '.join(clusters)}}})"
        schedd = self._schedd()
        ads = self._call("history", schedd.history, constraint, list(HTCONDOR_USAGE_ATTRIBUTES))
        wanted = {j.batch_id for j in jobs}
        return {job_id(ad): usage_from_ad(ad) for ad in ads if job_id(ad) in wanted}

    def cancel(self, batch_ids: Sequence[str]) -> None:
        if not batch_ids:
            return
        import htcondor2

        for value in batch_ids:
            self._cluster(value)
        schedd = self._schedd()
        self._call(
            "remove", schedd.act, htcondor2.JobAction.Remove, list(batch_ids), "cancelled by OPOS"
        )

    def hold(self, batch_ids: Sequence[str]) -> ControlAnswers:
        import htcondor2

        def act(schedd: Any, ids: list[str]) -> int:
            ad = schedd.act(htcondor2.JobAction.Hold, ids, "paused by OPOS")
            return int(_get(ad, "TotalSuccess", 0) or 0)

        return self._control(batch_ids, act, wanted={BatchState.QUEUED}, already=BatchState.HELD)

    def release(self, batch_ids: Sequence[str]) -> ControlAnswers:
        import htcondor2

        def act(schedd: Any, ids: list[str]) -> int:
            ad = schedd.act(htcondor2.JobAction.Release, ids, "resumed by OPOS")
            return int(_get(ad, "TotalSuccess", 0) or 0)

        return self._control(batch_ids, act, wanted={BatchState.HELD}, already=BatchState.QUEUED)

    def set_priority(self, batch_ids: Sequence[str], level: int) -> ControlAnswers:
        value = str(JOBPRIO_BY_LEVEL[level])
        return self._control(
            batch_ids,
            lambda schedd, ids: schedd.edit(ids, "JobPrio", value),
            wanted={BatchState.QUEUED, BatchState.HELD},
        )

    def move(self, batch_ids: Sequence[str], placement: Placement) -> ControlAnswers:
        edits = []
        if placement.account:
            edits.append(("AccountingGroup", f'"{placement.account}"'))
        if placement.requirements:
            edits.append(("Requirements", placement.requirements))
        if not edits:
            return {
                value: ControlAnswer(ControlOutcome.SKIPPED, "nothing HTCondor can change")
                for value in batch_ids
            }

        def edit(schedd: Any, ids: list[str]) -> int:
            return min(schedd.edit(ids, attr, value) for attr, value in edits)

        return self._control(batch_ids, edit, wanted={BatchState.QUEUED, BatchState.HELD})

    def _control(
        self,
        batch_ids: Sequence[str],
        apply: Any,
        wanted: set[BatchState],
        already: BatchState | None = None,
    ) -> ControlAnswers:
        """Apply a control to the jobs in a ``wanted`` state (one query tells which), all in
        one call; when fewer took it than were asked, one call per job for its own answer."""
        answers: ControlAnswers = {}
        if not batch_ids:
            return answers
        clusters = sorted({self._cluster(v) for v in batch_ids})
        schedd = self._schedd()
        constraint = f"member(ClusterId, {{{', '.join(clusters)}}})"
        ads = self._call("query", schedd.query, constraint, PROJECTION)
        listed = {job_id(ad): map_job_ad(ad) for ad in ads}
        targets = []
        for value in batch_ids:
            status = listed.get(value)
            if status is None:
                answers[value] = ControlAnswer(ControlOutcome.SKIPPED, "no longer queued")
            elif status.state == already:
                answers[value] = ControlAnswer(ControlOutcome.DONE, f"already {status.state}")
            elif status.state not in wanted:
                answers[value] = ControlAnswer(ControlOutcome.SKIPPED, f"job is {status.state}")
            else:
                targets.append(value)
        if targets and self._call("control", apply, schedd, targets) >= len(targets):
            answers.update({v: ControlAnswer(ControlOutcome.DONE) for v in targets})
            return answers
        for value in targets:
            try:
                took = self._call("control", apply, schedd, [value])
            except BackendUnavailable as exc:
                answers[value] = ControlAnswer(ControlOutcome.FAILED, str(exc)[:300])
                continue
            answers[value] = (
                ControlAnswer(ControlOutcome.DONE)
                if took
                else ControlAnswer(ControlOutcome.FAILED, "the schedd did not change the job")
            )
        return answers

    def find(self, token: str) -> list[str]:
        check_token(token)
        constraint = f'OposToken == "{token}"'
        projection = ["ClusterId", "ProcId", "OposIndex"]
        schedd = self._schedd()
        ads = list(self._call("query", schedd.query, constraint, projection))
        ads += self._call("history", schedd.history, constraint, projection)
        return order_by_index(ads, token)

    @staticmethod
    def _cluster(batch_id: str) -> str:
        cluster, dot, proc = batch_id.partition(".")
        if not (cluster.isdigit() and dot and proc.isdigit()):
            raise BackendError(f"not an HTCondor job id: {batch_id!r}")
        return cluster

"""Job shim of the local backend: ``python local_runner.py [--user UID:GID] ELEMENT_DIR ARGV...``.

Also runnable as ``python -m campaigns.batch.local_runner``. The local backend starts it as the
leader of a new session (so cancel can kill the whole process group) and then forgets it; this
script does what the batch system's job shim does elsewhere:

* runs ARGV (an argument list, no shell) with ELEMENT_DIR as working directory, stdin from
  /dev/null and stdout/stderr appended to ``stdout.log``/``stderr.log`` there;
* records what the command used (CPU time of it and its children, wall time, peak resident
  memory, from ``wait4``) in ``usage.json``, then
* records the exit status in ``exit_code`` atomically (temp file + rename), using the shell
  convention 128+N for a command killed by signal N and 127 for a command that cannot be
  started;
* exits with that status.

With ``--user UID:GID`` (the local backend passes it when it runs as root, inside the
sandbox, see :mod:`campaigns.batch.sandbox`) it first gives up root for good: no
supplementary groups, then the group, then the user, so neither it nor the job can take
root back.

It uses the standard library only and imports nothing from the project, so it works whatever
the worker's ``sys.path`` and without Django.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXIT_CODE_FILE = "exit_code"
USAGE_FILE = "usage.json"  # read by campaigns.batch.usage.read_usage_file
CANCELLED_FILE = "cancelled"  # written by LocalBackend.cancel before it signals


def _write_atomic(path: Path, text: str) -> None:
    """Write ``path`` so that a reader never sees a partial file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_exit_code(workdir: Path, code: int) -> None:
    """Write ``exit_code`` so that a reader never sees a partial file."""
    _write_atomic(workdir / EXIT_CODE_FILE, f"{code}\n")


def write_usage(workdir: Path, rusage: object, wall_s: float, code: int) -> None:
    """Write ``usage.json`` from the command's ``wait4`` resource usage (Linux: KiB)."""
    record = {
        "cpu_user_s": round(rusage.ru_utime, 3),  # type: ignore[attr-defined]
        "cpu_sys_s": round(rusage.ru_stime, 3),  # type: ignore[attr-defined]
        "max_rss_kb": int(rusage.ru_maxrss),  # type: ignore[attr-defined]
        "wall_s": round(wall_s, 3),
        "exit_code": code,
    }
    _write_atomic(workdir / USAGE_FILE, json.dumps(record) + "\n")


def run(workdir: Path, argv: list[str]) -> int:
    """Run ``argv`` in ``workdir`` and return its exit status (shell convention)."""
    # Stale ones from an earlier attempt.
    (workdir / EXIT_CODE_FILE).unlink(missing_ok=True)
    (workdir / USAGE_FILE).unlink(missing_ok=True)
    # Handlers first: a cancel (SIGTERM to the process group) that arrives while the
    # command starts is passed on as soon as it runs, never lost.
    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        # Pass TERM/INT on and keep waiting, so the exit code is still recorded.
        if child is None:
            pending.append(signum)
        else:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    if (workdir / CANCELLED_FILE).exists():
        # Cancelled before it ran (the signal can reach a sandbox before the runner is in it).
        return 128 + signal.SIGTERM
    with (
        open(workdir / "stdout.log", "ab") as out,
        open(workdir / "stderr.log", "ab") as err,
    ):
        started = time.monotonic()
        try:
            child = subprocess.Popen(  # noqa: S603 - argument list, no shell
                argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
        except OSError as exc:
            err.write(f"local_runner: cannot start {argv[0]!r}: {exc}\n".encode())
            return 126 if isinstance(exc, PermissionError) else 127
        for signum in pending:
            child.send_signal(signum)
        # wait4, not wait: the kernel's own count of what the command and the children it
        # waited for used (the job's measurement of itself, as a batch system's accounting).
        _pid, status, rusage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        code = child.returncode
    code = 128 - code if code < 0 else code
    try:
        write_usage(workdir, rusage, time.monotonic() - started, code)
    except OSError as exc:  # the figures are a nice-to-have; the exit code is not
        print(f"local_runner: cannot write {USAGE_FILE}: {exc}", file=sys.stderr)
    return code


def drop_privileges(value: str) -> None:
    """Become ``UID:GID`` with no supplementary groups; fails loudly rather than run as root."""
    uid, _, gid = value.partition(":")
    if not (uid.isdigit() and gid.isdigit()) or int(uid) == 0:
        raise SystemExit(f"local_runner: bad --user {value!r}")
    os.setgroups([])
    os.setgid(int(gid))
    os.setuid(int(uid))
    if os.getuid() != int(uid) or os.geteuid() != int(uid):
        raise SystemExit("local_runner: could not switch to the job user")


def main(args: list[str]) -> int:
    """Entry point: ``[--user UID:GID] ELEMENT_DIR ARGV...``."""
    if len(args) >= 3 and args[0] == "--user":
        try:
            drop_privileges(args[1])
        except (OSError, SystemExit) as exc:
            # Never run the job as root; record a failure so it is not reported lost.
            print(f"local_runner: cannot switch to the job user: {exc}", file=sys.stderr)
            write_exit_code(Path(args[2]), 126)
            return 126
        args = args[2:]
    if len(args) < 2:
        usage = "usage: local_runner.py [--user UID:GID] ELEMENT_DIR COMMAND [ARG...]"
        print(usage, file=sys.stderr)
        return 2
    workdir = Path(args[0])
    code = run(workdir, args[1:])
    write_exit_code(workdir, code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""How the local backend keeps a job away from the service: a bubblewrap sandbox, and another
user when the service runs as root.

A job runs experiment code, which the tracker checks (registered, approved, checksummed) but
does not trust with its own secrets. On Slurm and HTCondor the batch account is another
account than the service's, and file permissions keep the two apart (README, "Batch
accounts"). On the local backend the job starts on the service's own machine, so it runs in
a bubblewrap (``bwrap``) sandbox that shows it

* the system read-only (``/`` bound read-only), a fresh ``/tmp``, ``/var/tmp``, ``/run``
  (the sockets of PostgreSQL, Redis and munge live there), ``/dev`` and ``/proc`` (a new
  process namespace: the service's processes and their environments are not there);
* none of the hidden paths (the data folder with the database, secret key, broker folder and
  spool; the work root; the service's home), each covered by an empty ``tmpfs``;
* read-only again: the interpreter, the project's code (for the job wrapper), the registered
  code and the job's inputs (``ArraySpec.read_paths``) and its array folder; read-write its
  own element folder only;
* no network unless the site allows it (``job_network``): with a network a job could reach
  a database or broker that trusts local connections;
* only the allow-listed environment (``--clearenv`` then ``--setenv``).

The most specific rule wins: paths are applied shallowest first, so a read path inside a
hidden folder is shown (the campaign's folder inside the work root) and a hidden folder inside
a read path is hidden (the data folder inside the project folder).

When the service runs as root (so it can switch users) the job also runs as the job user
(``nobody`` unless configured): bwrap, started as root, builds the view (it can bind what an
unprivileged user could not reach, such as an interpreter under ``/root``), and the runner
gives up root before anything of the job starts. Running bwrap itself as the job user would
need unprivileged user namespaces and could not bind such paths.

No ``--die-with-parent``: the local backend lets jobs outlive the worker that started them
(its state is on disk, polling survives restarts); cancel kills the process group. The pid
namespace still ends every process of a job with it.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .base import BackendError

SANDBOX = "sandbox"
OFF = "off"
MODES = (SANDBOX, OFF)
DEFAULT_JOB_USER = "nobody"
FRESH_DIRS = ("/tmp", "/var/tmp", "/run")  # noqa: S108 - covered by an empty tmpfs, not used
"""Covered by an empty tmpfs in every sandbox: other users' temporary files and the local
sockets of the database, the broker and munge."""

PROBE = ("--proc", "/proc", "--", "true")
INSTALL_HINT = (
    "install bubblewrap (apt-get install bubblewrap), or set OPOS_LOCAL_ISOLATION=off to run "
    "local jobs unisolated, with the service's files in reach (trusted code only)"
)


@dataclass(frozen=True)
class JobUser:
    """The account a job runs as when the service can switch users."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Isolation:
    """How local jobs are isolated; built once per backend from its options."""

    mode: str = SANDBOX
    hidden_paths: tuple[str, ...] = ()
    tool_paths: tuple[str, ...] = ()
    job_user: JobUser | None = None
    network: bool = False
    bwrap: str = "bwrap"

    @property
    def sandboxed(self) -> bool:
        return self.mode == SANDBOX


def interpreter_paths(python: str = sys.executable) -> list[str]:
    """What running ``python`` needs to read: the venv, the base installation, the binary."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    real = Path(python).resolve()
    paths.add(str(real.parent.parent if real.parent.name == "bin" else real.parent))
    return sorted(paths)


def job_user(name: str | None) -> JobUser | None:
    """The job user when the service can switch users (runs as root), else None.

    A configured user the service cannot switch to is a configuration error, not a silent
    fallback to the service's own account.
    """
    if os.geteuid() != 0:
        if name:
            raise BackendError(
                f"OPOS_LOCAL_JOB_USER={name!r}: switching users needs the service to run as "
                "root; unset it to run jobs as the service's user inside the sandbox"
            )
        return None
    wanted = name or DEFAULT_JOB_USER
    try:
        entry = pwd.getpwnam(wanted)
    except KeyError:
        raise BackendError(f"job user {wanted!r} does not exist (OPOS_LOCAL_JOB_USER)") from None
    if entry.pw_uid == 0:
        raise BackendError(f"job user {wanted!r} is root: jobs must not run as the service")
    return JobUser(wanted, entry.pw_uid, entry.pw_gid)


def build(
    mode: str = SANDBOX,
    *,
    hidden_paths: Iterable[str | Path] = (),
    tool_paths: Iterable[str | Path] = (),
    job_user_name: str | None = None,
    network: bool = False,
    python: str = sys.executable,
) -> Isolation:
    """An :class:`Isolation` from the backend's options (paths made absolute, user looked up)."""
    if mode not in MODES:
        raise BackendError(f"local isolation must be one of {MODES}: {mode!r}")
    if mode == OFF:
        return Isolation(mode=OFF)
    hidden = {str(Path(p).expanduser().absolute()) for p in [*hidden_paths, Path.home()]}
    # A home of "/" (some service accounts) must not hide the whole system.
    hidden = {p for p in hidden if len(Path(p).parts) > 1}
    tools = {str(Path(p).absolute()) for p in tool_paths}
    tools.update(interpreter_paths(python))
    # The runner (campaigns/batch) and the job wrapper (campaigns/execution): the whole
    # package, always, whatever the options say. A project in a hidden place (a clone
    # under /tmp, the service's home) would otherwise leave the wrapper unimportable.
    tools.add(str(Path(__file__).resolve().parent.parent))
    return Isolation(
        mode=SANDBOX,
        hidden_paths=tuple(sorted(hidden)),
        tool_paths=tuple(sorted(tools)),
        job_user=job_user(job_user_name),
        network=network,
        bwrap=shutil.which("bwrap") or "bwrap",
    )


def _depth(path: str) -> int:
    return len(Path(path).parts)


def bwrap_argv(
    isolation: Isolation,
    *,
    element_dir: Path,
    array_dir: Path,
    read_paths: Sequence[str] = (),
    environment: Mapping[str, str],
) -> list[str]:
    """The bwrap options (up to and including ``--``) for one element."""
    # Every namespace but the user one: started as root, bwrap keeps the real root so that
    # the runner can switch to the job user (in a user namespace setgroups is refused);
    # started by another user, bwrap makes the user namespace it needs by itself.
    argv = [isolation.bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-uts"]
    argv.append("--unshare-cgroup-try")
    if not isolation.network:
        argv.append("--unshare-net")
    argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    fresh_dirs = list(FRESH_DIRS)
    if os.path.isdir("/var/run") and not os.path.islink("/var/run"):
        fresh_dirs.append("/var/run")  # a real folder (not the usual link to /run): sockets
    for fresh in fresh_dirs:
        argv += ["--perms", "01777" if "tmp" in fresh else "0755", "--tmpfs", fresh]
    # (path, rule): the most specific path wins, so rules go shallowest first; at equal
    # depth a hidden rule goes first and a shown one then wins for exactly that path.
    rules: dict[str, str] = {}
    # Real paths: bwrap follows a symlinked source but cannot mount onto a symlink. A shown
    # path that is itself a link (a virtualenv linked into the project) is made again as a
    # link when it lies in a hidden folder.
    links: dict[str, str] = {}
    for path in isolation.hidden_paths:
        rules[os.path.realpath(path)] = "hide"
    for path in [*isolation.tool_paths, *read_paths, str(array_dir)]:
        rules[os.path.realpath(path)] = "read"
        if os.path.islink(path):
            links[str(Path(path).absolute())] = os.path.realpath(path)
    rules[os.path.realpath(element_dir)] = "write"
    order = sorted(rules, key=lambda p: (_depth(p), rules[p] != "hide", p))
    covered = list(fresh_dirs)
    for path in order:
        rule = rules[path]
        if not os.path.lexists(path):
            continue  # nothing there to hide or show; bwrap would fail on a missing source
        if rule == "hide":
            if os.path.isdir(path):
                argv += ["--tmpfs", path]
                covered.append(path)
            else:
                argv += ["--ro-bind", "/dev/null", path]
            continue
        argv += _parents(path, covered)
        argv += ["--ro-bind" if rule == "read" else "--bind", path, path]
    for link, target in sorted(links.items()):
        if any(Path(link).is_relative_to(c) for c in covered):
            argv += [*_parents(link, covered), "--symlink", target, link]
    argv += ["--chdir", str(element_dir), "--clearenv"]
    for key, value in sorted(environment.items()):
        argv += ["--setenv", key, value]
    argv.append("--")
    return argv


def _parents(path: str, covered: Sequence[str]) -> list[str]:
    """bwrap makes the missing folders above a mount point in a tmpfs with mode 0700, which
    the job user could not pass: make them 0755 first."""
    argv: list[str] = []
    for parent in reversed(Path(path).parents):
        if any(parent.is_relative_to(c) and str(parent) != c for c in covered):
            argv += ["--perms", "0755", "--dir", str(parent)]
    return argv


@functools.cache
def _probe(bwrap: str) -> str | None:
    """None when bwrap can build a sandbox here, else why not (cached per process)."""
    if not shutil.which(bwrap):
        return "bwrap is not installed"
    try:
        done = subprocess.run(  # noqa: S603 - argument list, no shell
            [bwrap, "--unshare-pid", "--unshare-net", "--ro-bind", "/", "/", *PROBE],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap cannot run: {exc}"
    if done.returncode != 0:
        return f"bwrap cannot make a sandbox here: {done.stderr.strip()[:300]}"
    return None


def check(isolation: Isolation) -> None:
    """Refuse to run jobs when the sandbox cannot be built (raises :class:`BackendError`)."""
    if not isolation.sandboxed:
        return
    problem = _probe(isolation.bwrap)
    if problem:
        raise BackendError(f"local jobs run in a bubblewrap sandbox and {problem}: {INSTALL_HINT}")


def prepare_element(isolation: Isolation, element_dir: Path, files: Sequence[Path]) -> None:
    """Hand the element folder (and the log files the runner appends to) to the job user."""
    user = isolation.job_user
    if user is None:
        return
    for path in (element_dir, *files):
        os.chown(path, user.uid, user.gid)


def runner_options(isolation: Isolation) -> list[str]:
    """Options of :mod:`campaigns.batch.local_runner`: the user it switches to first."""
    user = isolation.job_user
    if not isolation.sandboxed or user is None:
        return []
    return ["--user", f"{user.uid}:{user.gid}"]

"""Keep one process running: ``python -m opos.supervise --name worker -- celery -A opos worker``.

``make run`` starts web, worker and beat with honcho, which stops everything as soon as one
process exits and restarts nothing; a worker that died (killed, out of memory, a bug) left
the service up but doing nothing. Each Procfile line runs its process under this small
supervisor instead: when the child exits on its own it is started again, after a pause that
doubles from ``--backoff`` up to ``--backoff-max`` while it keeps failing quickly (and is
back to ``--backoff`` once it has stayed up ``--settle`` seconds), so a process that cannot
start (a broken setting) does not spin.

SIGTERM, SIGINT and SIGHUP are passed to the child and end the supervision: the supervisor
waits for the child to stop and exits with its status, which is what honcho (Ctrl-C) and
a container runtime expect. The child runs in a session of its own, so a Ctrl-C in the
terminal reaches it once (through the supervisor) rather than twice; Celery would take a
second SIGINT as "stop now, drop the running tasks". If the supervisor itself is killed,
the kernel stops the child too (Linux: the parent-death signal).

The command is run as given (an argument list, never through a shell). Production
deployments leave restarting to their own process manager (docker compose
``restart: unless-stopped``, systemd ``Restart=always``).
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

log = logging.getLogger("opos.supervise")

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Supervisor:
    """Run ``argv``; start it again when it exits, until told to stop."""

    def __init__(
        self,
        argv: Sequence[str],
        name: str = "child",
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
        settle_s: float = 60.0,
    ) -> None:
        if not argv:
            raise ValueError("nothing to supervise: give the command after --")
        self.argv = list(argv)
        self.name = name
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.settle_s = settle_s
        self.child: subprocess.Popen | None = None
        self.stopping = threading.Event()
        self.stop_signal: int | None = None
        self.starts = 0

    def on_signal(self, signum: int, _frame: FrameType | None = None) -> None:
        self.stop_signal = signum
        self.stopping.set()
        child = self.child
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    def run(self) -> int:
        pause = self.backoff_s
        status = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            self.child = subprocess.Popen(  # noqa: S603 - an argument list from the Procfile
                self.argv,
                start_new_session=True,
                # The supervisor has one thread: preexec_fn is safe here.
                preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
            )
            self.starts += 1
            log.info("%s: started pid %d (start %d)", self.name, self.child.pid, self.starts)
            if self.stopping.is_set() and self.stop_signal is not None:
                # A signal arrived between the loop test and the start: pass it on.
                self.child.send_signal(self.stop_signal)
            status = self.child.wait()
            if self.stopping.is_set():
                break
            ran = time.monotonic() - started
            pause = self.backoff_s if ran >= self.settle_s else pause
            log.warning(
                "%s: pid %d exited with %s after %.0f s; starting again in %.0f s",
                self.name,
                self.child.pid,
                describe(status),
                ran,
                pause,
            )
            if self.stopping.wait(pause):
                break
            pause = min(pause * 2, self.backoff_max_s)
        log.info("%s: stopped (%s)", self.name, describe(status))
        return status if status >= 0 else 128 - status


def die_with_parent() -> None:
    """In the child, before it runs the command (Linux): the kernel sends it SIGTERM if the
    supervisor dies, even by SIGKILL. In a session of its own, nothing else would tell it,
    and a worker would run on after ``make run`` ended."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def describe(status: int) -> str:
    if status < 0:
        try:
            return signal.Signals(-status).name
        except ValueError:
            return f"signal {-status}"
    return f"status {status}"


def main(args: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opos.supervise", description=__doc__)
    parser.add_argument("--name", default="child", help="name in the log lines")
    parser.add_argument("--backoff", type=float, default=1.0, help="first pause, seconds")
    parser.add_argument("--backoff-max", type=float, default=30.0, help="longest pause")
    parser.add_argument(
        "--settle", type=float, default=60.0, help="up this long: the next pause is the first"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the command and arguments")
    options = parser.parse_args(args)
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not command:
        parser.error("give the command to supervise after --")
    supervisor = Supervisor(
        command, options.name, options.backoff, options.backoff_max, options.settle
    )
    for signum in FORWARDED:
        signal.signal(signum, supervisor.on_signal)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())

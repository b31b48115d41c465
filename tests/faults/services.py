"""The real services a fault trial runs on, and the faults done to them.

Each trial gets a PostgreSQL cluster and a Redis server of its own (started here, on free
ports, under a temporary folder), so restarting them disturbs nothing else on the
machine; Slurm is the machine's single-node cluster (``scripts/slurm/up.sh``), whose
controller is stopped and started again. Batch commands are reached through a folder of
shims put first on ``PATH``: ``sbatch`` records every call and its answer (the batch
system's own log of what was submitted), ``squeue`` can be made to hang.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
SLURM_DIR = Path(os.environ.get("OPOS_SLURM_DIR", "/var/lib/opos-slurm"))


class Unavailable(Exception):
    """A service this trial needs cannot run here (the message says which, and why)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout: float, what: str, pause: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s")
        time.sleep(pause)


def _as_postgres(argv: list[str]) -> list[str]:
    return argv if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *argv]


@dataclass
class Postgres:
    """A PostgreSQL cluster of this trial's own (initdb, pg_ctl), trust auth on 127.0.0.1."""

    folder: Path
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.folder / "pgdata"

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise Unavailable(f"PostgreSQL server binaries not found in {PG_BIN}")
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        elif os.environ.get("USER") != "postgres":
            raise Unavailable(
                "a private PostgreSQL cluster needs root (runuser) or the postgres user"
            )
        if not self.data.exists():
            subprocess.run(
                _as_postgres(
                    [str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]
                ),
                check=True,
                capture_output=True,
            )
        self._pg_ctl("start")

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c max_connections=60"
        )
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.folder / "postgres.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    action,
                    *extra,
                ]
            ),
            check=True,
            capture_output=True,
        )

    def restart(self) -> None:
        """A real restart: connections are cut, the server is down for a moment."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", "immediate")

    def create_database(self, name: str, template: str | None = None) -> None:
        """An empty database, or a copy of ``template`` (which nothing may be connected to)."""
        copy = f' TEMPLATE "{template}"' if template else ""
        subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-c",
                f'CREATE DATABASE "{name}"{copy}',
            ],
            check=True,
            capture_output=True,
        )

    def migrated_template(self, name: str, env: dict[str, str]) -> None:
        """A database with every migration applied, for the trials to copy: the driver's own
        migrate then finds nothing to do, instead of each trial migrating from empty (about
        7 s of CPU each)."""
        self.create_database(name)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
            cwd=ROOT,
            env={**env, "DATABASE_URL": self.url(name)},
            check=True,
            capture_output=True,
        )


@dataclass
class Redis:
    """A Redis server of this trial's own, nothing persisted (a restart loses every message)."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if not shutil.which("redis-server"):
            raise Unavailable("redis-server is not installed")
        log = (self.folder / "redis.log").open("a")
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self.ping, 20, "redis")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def shutdown(self) -> None:
        """``redis-cli shutdown nosave``: every queued message is gone."""
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True
        )
        if self.process is not None:
            self.process.wait(timeout=20)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.shutdown()


class Slurm:
    """The machine's single-node cluster: is it there, stop and start its controller."""

    pidfile = SLURM_DIR / "run" / "slurmctld.pid"

    @staticmethod
    def check() -> None:
        for command in ("sbatch", "squeue", "scancel", "sinfo"):
            if not shutil.which(command):
                raise Unavailable(f"Slurm command {command} not installed (scripts/slurm/up.sh)")
        try:
            done = subprocess.run(["sinfo", "-h"], capture_output=True, text=True, timeout=15)
        except subprocess.TimeoutExpired as exc:
            raise Unavailable("sinfo timed out (start the cluster: scripts/slurm/up.sh)") from exc
        if done.returncode != 0:
            raise Unavailable(f"Slurm does not respond: {done.stderr.strip()}")

    def stop_controller(self) -> None:
        pid = int(self.pidfile.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not _alive(pid), 30, "slurmctld to stop")

    def start_controller(self) -> None:
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "slurm" / "up.sh")],
            check=True,
            capture_output=True,
            timeout=120,
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


SBATCH_SHIM = """#!/bin/bash
# Records every sbatch call and its answer, then answers as sbatch. The call runs in a
# session of its own: when the worker that called it is killed (its whole process group),
# the submission may still reach Slurm, and is still recorded here.
out="$(mktemp)"
setsid bash -c '"$0" "${{@:3}}" >"$1" 2>&1; echo $? >"$1.rc"; \
  printf "%s\\t%s\\t%s\\n" "$(cat "$1.rc")" "$(tr -d "\\r\\n" <"$1")" "${{*:3}}" >>"$2"' \
  "{real}" "$out" "{log}" "$@" &
wait $!
cat "$out"
rc="$(cat "$out.rc" 2>/dev/null || echo 1)"
rm -f "$out" "$out.rc"
exit "$rc"
"""
SQUEUE_SHIM = """#!/bin/bash
# squeue, or a hang while the flag file exists (a batch command that never answers).
while [ -e "{flag}" ]; do sleep 0.5; done
exec "{real}" "$@"
"""


@dataclass
class Shims:
    """A folder put first on PATH: a recording ``sbatch`` and a ``squeue`` that can hang."""

    folder: Path

    @property
    def sbatch_log(self) -> Path:
        return self.folder / "sbatch.log"

    @property
    def hang_flag(self) -> Path:
        return self.folder / "squeue.hang"

    def install(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, text in (("sbatch", SBATCH_SHIM), ("squeue", SQUEUE_SHIM)):
            real = shutil.which(name)
            if real is None:
                raise Unavailable(f"{name} is not installed")
            path = self.folder / name
            path.write_text(text.format(real=real, log=self.sbatch_log, flag=self.hang_flag))
            path.chmod(0o755)
        self.sbatch_log.touch()

    def path(self) -> str:
        return f"{self.folder}:{os.environ.get('PATH', '')}"

    def calls(self) -> list[tuple[int, str, str]]:
        """``(exit code, answer, arguments)`` of every sbatch call so far."""
        rows = []
        for line in self.sbatch_log.read_text().splitlines():
            rc, answer, args = [*line.split("\t", 2), "", ""][:3]
            rows.append((int(rc or 1), answer.strip(), args))
        return rows


@dataclass
class TinyFilesystem:
    """A small ext4 filesystem on a loop device: the output area that can be filled up."""

    folder: Path
    size_mb: int = 64

    @property
    def mount_point(self) -> Path:
        return self.folder / "mnt"

    def mount(self) -> Path:
        if os.geteuid() != 0:
            raise Unavailable("mounting a loop filesystem needs root")
        image = self.folder / "area.img"
        self.mount_point.mkdir(parents=True, exist_ok=True)
        subprocess.run(["truncate", "-s", f"{self.size_mb}M", str(image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
        done = subprocess.run(
            ["mount", "-o", "loop", str(image), str(self.mount_point)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise Unavailable(f"cannot mount a loop filesystem: {done.stderr.strip()}")
        return self.mount_point

    def fill(self) -> None:
        """Write a filler file until the filesystem is full."""
        filler = self.mount_point / "filler"
        chunk = b"\0" * (1 << 20)
        with filler.open("wb") as fh:
            try:
                while True:
                    fh.write(chunk)
                    fh.flush()
            except OSError:
                pass
        # Whatever is left below a block goes too.
        try:
            with (self.mount_point / "filler-tail").open("wb") as fh:
                while True:
                    fh.write(b"\0" * 1024)
                    fh.flush()
        except OSError:
            pass

    def free(self) -> None:
        for name in ("filler", "filler-tail"):
            (self.mount_point / name).unlink(missing_ok=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.mount_point)], capture_output=True)

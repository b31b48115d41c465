"""Leases: one worker at a time talks to a batch endpoint for a given chore.

Every write of execution is a compare-and-set, so two workers polling the same backend
at once lose nothing; what they can lose is time. With ``squeue`` hanging on its
controller, each poll task that asks it waits out the batch timeout, and with every
worker inside such a poll nothing else runs: jobs of other backends finish unseen,
finalize and submissions queue behind (the fault trial "squeue hangs"). A lease per
backend lets only one poll wait on a batch system; the others skip it and go on with
the rest of the work.

A lease lives exactly as long as its holder's process, with nothing to expire or clean
up: on PostgreSQL it is a session advisory lock on the holder's connection (released
when the worker dies and its connection closes, wherever the worker runs); on SQLite,
where workers share one host, an ``flock`` on a file under the data folder (released
when the process dies). A connection pooler in transaction mode would break the former;
deployments behind one must poll from a single worker.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection

log = logging.getLogger(__name__)

# The first key of PostgreSQL's two-key advisory locks: this tracker's namespace.
NAMESPACE = 0x0F05

# Leases this process holds: a second taker in the same process is refused too (a
# PostgreSQL session would grant its own advisory lock twice).
_HELD: set[str] = set()
_HELD_GUARD = threading.Lock()


class Lease:
    """One held lease; ``release`` gives it back (idempotent)."""

    def __init__(self, name: str, release: Callable[[], None]) -> None:
        self.name = name
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        if self._release is None:
            return
        release, self._release = self._release, None
        try:
            release()
        except (DatabaseError, OSError):
            # The connection or file went away: so did the lease with it.
            log.warning("lease %s: already gone when released", self.name, exc_info=True)
        finally:
            with _HELD_GUARD:
                _HELD.discard(self.name)


def try_acquire(name: str) -> Lease | None:
    """The lease ``name`` if no one else holds it, else None (never waits)."""
    with _HELD_GUARD:
        if name in _HELD:
            return None
        _HELD.add(name)
    try:
        lease = _advisory(name) if connection.vendor == "postgresql" else _flock(name)
    except BaseException:
        lease = None
        raise
    finally:
        if lease is None:
            with _HELD_GUARD:
                _HELD.discard(name)
    return lease


@contextmanager
def held(name: str) -> Iterator[Lease | None]:
    """``try_acquire`` as a context: the lease (or None) for the block, released after."""
    lease = try_acquire(name)
    try:
        yield lease
    finally:
        if lease is not None:
            lease.release()


def _key(name: str) -> int:
    """A stable signed 32-bit key for ``name`` (crc32; collisions only share a lease)."""
    value = zlib.crc32(name.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def _advisory(name: str) -> Lease | None:
    key = _key(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [NAMESPACE, key])
        if not cursor.fetchone()[0]:
            return None

    def release() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [NAMESPACE, key])

    return Lease(name, release)


def lock_path(name: str) -> Path:
    """The file whose ``flock`` is the lease ``name`` on SQLite."""
    folder = Path(settings.DATA_DIR) / "leases"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".lock")


def _flock(name: str) -> Lease | None:
    fd = os.open(lock_path(name), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None

    def release() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    return Lease(name, release)

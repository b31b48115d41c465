"""The embedded default's broker: kombu's filesystem transport, made safe for several
processes.

kombu's own transport (``kombu.transport.filesystem``) has two faults that kill or
confuse a worker when web, worker and beat share one folder:

* **writes in place**: ``_put`` creates the message file under its final name and then
  writes it. A reader does not take the writer's ``flock`` (it ``shutil.move``s the file
  away), so it can read a half-written file; ``json.loads`` then raises, the exception
  leaves the consumer and Celery stops the worker ("Unrecoverable error:
  JSONDecodeError").
* **takes by copying**: the reader moves the file to the system temporary folder, which is
  often another file system; ``shutil.move`` then copies and deletes, so two readers can
  both copy the same message and run it twice.

:class:`FilesystemTransport` fixes both: a message is written to a temporary name in the
same folder (a name no reader picks up) and renamed into place (``os.replace``, atomic on
POSIX: a reader sees the whole file or none); a reader takes a message by renaming it into
the ``processed`` folder beside the queue (same file system, so exactly one reader wins),
and a file it cannot decode, whoever wrote it, is moved to the ``broken`` folder and
logged instead of raised, so the worker goes on with the next message.

Settings name it through ``CELERY_BROKER_TRANSPORT`` (the explicit transport wins over the
URL's scheme in kombu), so ``CELERY_BROKER_URL`` stays ``filesystem://``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"
"""Temporary name of a message being written: never ``<...>.<queue>.msg``, so no reader or
size count sees it."""


def message_name(queue: str) -> str:
    """kombu's file name for a message of ``queue``: sorted by time, then unique."""
    return f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"


def is_message_of(filename: str, queue: str) -> bool:
    """kombu's own test: everything after the first dot is ``<queue>.msg``."""
    return filename.partition(".")[2] == f"{queue}.msg"


def queue_depth(folder: str | Path, queue: str) -> int:
    """Messages of ``queue`` waiting in ``folder`` (a directory listing, no parsing)."""
    return sum(1 for name in os.listdir(folder) if is_message_of(name, queue))


class Channel(filesystem.Channel):
    """Atomic writes, single-winner takes, and broken messages quarantined."""

    def get_table(self, exchange: str) -> list:
        """The exchange's bindings; an exchange file caught between its creation and its
        first write (kombu creates it, then locks it) reads as no bindings: a broadcast
        (remote control) is lost, not the worker."""
        try:
            return super().get_table(exchange)
        except ValueError:
            log.warning("broker: exchange %r's table is being written; no bindings yet", exchange)
            return []

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        final = os.path.join(self.data_folder_out, message_name(queue))
        part = final + PART_SUFFIX
        try:
            with open(part, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(part, final)
        except OSError as exc:
            with_suppressed_remove(part)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue: str) -> Any:
        folder = self.data_folder_in
        taken_folder = self.taken_folder
        for filename in sorted(os.listdir(folder)):
            if not is_message_of(filename, queue):
                continue
            taken = os.path.join(taken_folder, filename)
            try:
                # One file system: a rename, so exactly one reader takes the message.
                os.rename(os.path.join(folder, filename), taken)
            except FileNotFoundError:
                continue  # another reader took it first
            except OSError as exc:
                raise ChannelError(f"Cannot take {filename!r} from the queue") from exc
            try:
                with open(taken, "rb") as f:
                    payload = f.read()
            except OSError as exc:
                raise ChannelError(f"Cannot read file {taken!r} from queue.") from exc
            try:
                message = loads(bytes_to_str(payload))
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
                self._quarantine(taken, filename, f"not JSON ({exc})")
                continue
            if not isinstance(message, dict):
                self._quarantine(taken, filename, f"not a message ({type(message).__name__})")
                continue
            if not self.store_processed:
                with_suppressed_remove(taken)
            return message
        raise Empty()

    def _quarantine(self, taken: str, filename: str, why: str) -> None:
        broken = os.path.join(self.broken_folder, filename)
        try:
            os.replace(taken, broken)
        except OSError:
            log.exception("cannot move the broken message %s aside; removing it", filename)
            with_suppressed_remove(taken)
            broken = "(removed)"
        log.error("broker: skipped message %s: %s; kept as %s", filename, why, broken)

    @property
    def taken_folder(self) -> str:
        """Where a reader moves a message it takes: ``processed_folder`` (kept there only
        with ``store_processed``); it must be on the queue folder's file system."""
        return self._sibling_folder("processed_folder", "processed")

    @property
    def broken_folder(self) -> str:
        return self._sibling_folder("broken_folder", "broken")

    def _sibling_folder(self, option: str, default: str) -> str:
        path = self.transport_options.get(option) or os.path.join(
            os.path.dirname(os.path.abspath(self.data_folder_in)), default
        )
        os.makedirs(path, exist_ok=True)
        return str(path)


def with_suppressed_remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


class FilesystemTransport(filesystem.Transport):
    """kombu's filesystem transport with :class:`Channel`."""

    Channel = Channel

"""Copying outputs into storage and verifying them: a local folder or an XRootD endpoint.

Both ends are compared by adler32 (the checksum HEP storage keeps): the local one with
``zlib.adler32`` while the manifest is checked, the stored one by the storage itself (for
XRootD a server-side ``xrdfs query checksum``, which needs ``xrootd.chksum adler32`` in
the server's configuration; for a local folder the stored copy read back).

A file already in storage with the same checksum is adopted, not copied again: a retry
after a crash between the copy and the catalogue's transaction never duplicates. A stored
file with another checksum is not in the catalogue (the catalogue refuses a name twice
before anything is copied), so it is the remains of an interrupted copy: overwritten.

XRootD is reached through Debian's ``xrootd-client`` commands (``xrdcp``, ``xrdfs``), run
as argument lists, never through a shell, each bounded by ``OPOS_TRANSFER_TIMEOUT_S``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from django.conf import settings

ROOT_URL = re.compile(
    r"^root://(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)"
    r"(?::(?P<port>[0-9]{1,5}))?/(?P<path>/[A-Za-z0-9_.+:/-]*)$"
)
SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,254}$")
ADLER32 = re.compile(r"^[0-9a-f]{8}$")
XRD_NOT_FOUND = 54  # xrdfs/xrdcp's exit status for "no such file" (kXR_NotFound)
# Connection errors fail within seconds, not after the client's default minutes of retries:
# finalize retries with its own backoff.
XRD_ENV = {"XRD_CONNECTIONRETRY": "1", "XRD_CONNECTIONWINDOW": "10", "XRD_REQUESTTIMEOUT": "120"}


class StorageURLError(ValueError):
    """A storage area's address that cannot be used, with what is wrong."""


class TransferError(Exception):
    """A copy or verification that failed; ``kind`` classes it (see ``ERROR_KINDS``)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


ERROR_KINDS = {
    "unreachable": "storage unreachable",
    "denied": "permission denied by storage",
    "no_space": "storage full",
    "checksum": "checksum mismatch between the job's file and the stored copy",
    "missing": "the job's file is gone",
    "other": "storage error",
}


@dataclass(frozen=True)
class Area:
    """Where one experiment's files go: ``root`` is a local folder or a root:// URL."""

    root: str
    storage_id: int | None = None

    @property
    def remote(self) -> bool:
        return self.root.startswith("root://")

    def url_for(self, dataset: str, name: str) -> str:
        for segment in (dataset, name):
            if not SEGMENT.fullmatch(segment):
                raise TransferError("other", f"{segment!r} cannot name a file in storage")
        if self.remote:
            return f"{self.root.rstrip('/')}/{dataset}/{name}"
        return (Path(self.root) / dataset / name).as_uri()


def validate_url(url: str) -> str:
    """The area's address normalised, or ``StorageURLError`` saying what is wrong."""
    if not isinstance(url, str) or not url.strip():
        raise StorageURLError("give root://host:port//path or an absolute folder")
    url = url.strip()
    if len(url) > 400:
        raise StorageURLError("at most 400 characters")
    if url.startswith("root://"):
        match = ROOT_URL.fullmatch(url)
        if not match:
            raise StorageURLError(
                "an XRootD address is root://host[:port]//absolute/path (letters, digits and "
                "_ . + : - / in the path; no query string: tokens are not supported)"
            )
        port = match["port"]
        if port is not None and not 1 <= int(port) <= 65535:
            raise StorageURLError(f"port {port} is not between 1 and 65535")
        path = match["path"]
        if any(part in (".", "..") for part in path.split("/")):
            raise StorageURLError("the path may not contain . or .. segments")
        return url.rstrip("/") if path != "/" else url
    if url.startswith("/"):
        if "\0" in url or any(part in (".", "..") for part in url.split("/")):
            raise StorageURLError("the folder may not contain . or .. segments")
        return url.rstrip("/") or "/"
    raise StorageURLError(f"{url!r} is neither root://host:port//path nor an absolute folder")


def default_root(experiment_slug: str) -> str:
    """The embedded default area of an experiment: a folder under ``OPOS_STORAGE_DIR``."""
    return str(Path(settings.OPOS_STORAGE_DIR) / experiment_slug)


def adler32_of(path: Path) -> str:
    value = 1
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            value = zlib.adler32(block, value)
    return f"{value:08x}"


# --- XRootD ----------------------------------------------------------------------------------


def _split(url: str) -> tuple[str, str]:
    """``root://h:p//a/b`` -> (``root://h:p``, ``/a/b``)."""
    match = ROOT_URL.fullmatch(url)
    if not match:
        raise TransferError("other", f"not an XRootD address: {url}")
    server = f"root://{match['host']}" + (f":{match['port']}" if match["port"] else "")
    return server, match["path"]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(  # noqa: S603 - an argument list, never a shell
            argv,
            capture_output=True,
            text=True,
            timeout=settings.OPOS_TRANSFER_TIMEOUT_S,
            env={**os.environ, **XRD_ENV},
            check=False,
        )
    except FileNotFoundError as exc:
        raise TransferError("other", f"{argv[0]} is not installed (xrootd-client)") from exc
    except subprocess.TimeoutExpired as exc:
        raise TransferError(
            "unreachable", f"{argv[0]} took longer than {settings.OPOS_TRANSFER_TIMEOUT_S}s"
        ) from exc


def classify(returncode: int, stderr: str) -> str:
    """The kind of an XRootD client failure, from its exit status and message."""
    text = stderr.lower()
    if returncode in (51, 52) or "connection" in text or "socket" in text:
        return "unreachable"
    if "[3010]" in text or "not authorized" in text or "permission denied" in text:
        return "denied"
    if "no space" in text or "[3009]" in text or "quota" in text:
        return "no_space"
    return "other"


def _message(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return (lines[-1] if lines else "no message")[:300]


def xrootd_checksum(url: str) -> str | None:
    """The server's adler32 of the file at ``url``; None when there is no such file."""
    server, path = _split(url)
    done = _run(["xrdfs", server, "query", "checksum", path])
    if done.returncode == XRD_NOT_FOUND:
        return None
    if done.returncode != 0:
        raise TransferError(
            classify(done.returncode, done.stderr),
            f"checksum query for {url} failed: {_message(done.stderr)}",
        )
    parts = done.stdout.split()
    if len(parts) < 2 or parts[0].lower() != "adler32" or not ADLER32.fullmatch(parts[1].lower()):
        raise TransferError(
            "other",
            f"{server} did not answer an adler32 checksum for {path} "
            f"(is `xrootd.chksum adler32` configured?): {done.stdout.strip()[:100]!r}",
        )
    return parts[1].lower()


def xrootd_copy(source: Path, url: str) -> None:
    """Copy a local file to ``url``, replacing what is there, creating folders on the way."""
    done = _run(["xrdcp", "--nopbar", "--force", "--path", str(source), url])
    if done.returncode != 0:
        raise TransferError(
            classify(done.returncode, done.stderr),
            f"copy to {url} failed: {_message(done.stderr)}",
        )


# --- local folder ---------------------------------------------------------------------------


def _local_path(url: str) -> Path:
    return Path(unquote(url.removeprefix("file://")))


def local_checksum(url: str) -> str | None:
    path = _local_path(url)
    try:
        return adler32_of(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TransferError("denied", f"cannot read {path}: {exc.strerror or exc}") from exc


def local_copy(source: Path, url: str) -> None:
    """Copy next to the target, then rename over it: a reader never sees half a file."""
    target = _local_path(url)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except FileNotFoundError as exc:
        raise TransferError("missing", f"{source} is gone") from exc
    except OSError as exc:
        kind = "no_space" if exc.errno == 28 else "denied"
        raise TransferError(kind, f"copy to {target} failed: {exc.strerror or exc}") from exc


# --- one file -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    url: str
    adler32: str
    adopted: bool


def store(source: Path, expected_adler32: str, url: str) -> Stored:
    """Put ``source`` at ``url`` unless it is there already; verify the stored checksum."""
    remote = url.startswith("root://")
    checksum = xrootd_checksum if remote else local_checksum
    copy = xrootd_copy if remote else local_copy
    present = checksum(url)
    if present == expected_adler32:
        return Stored(url, present, adopted=True)
    if not source.is_file():
        raise TransferError("missing", f"{source} is gone")
    copy(source, url)
    stored = checksum(url)
    if stored != expected_adler32:
        raise TransferError(
            "checksum",
            f"{url}: adler32 {stored or 'absent'} in storage, "
            f"{expected_adler32} for the job's file",
        )
    return Stored(url, stored, adopted=False)

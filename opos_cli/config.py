"""Where ``opos login`` keeps the server URL and the API token.

``$XDG_CONFIG_HOME/opos/config.json`` (``~/.config/opos/config.json`` by
default). The token is a password equivalent: the folder is created 0700
and the file 0600, the mode set when the file is created (never a window
in which it is readable by others). ``OPOS_URL`` and ``OPOS_TOKEN`` override
the file, for CI jobs and scripts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import CliError, Exit


@dataclass(frozen=True)
class Session:
    """A server and the token to use on it."""

    url: str
    token: str
    username: str = ""


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "opos" / "config.json"


def normalise_url(url: str) -> str:
    """``host:8000/`` or ``https://host/api/v1`` -> the site root, ``https://host``."""
    url = url.strip().rstrip("/")
    if not url:
        raise CliError(Exit.USAGE, "give the server's URL, e.g. https://opos.example.org")
    if "://" not in url:
        url = f"http://{url}" if url.startswith(("localhost", "127.")) else f"https://{url}"
    if not url.startswith(("http://", "https://")):
        raise CliError(Exit.USAGE, f"{url!r} is not an http(s) URL")
    for suffix in ("/api/v1", "/api"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url


def save(session: Session) -> Path:
    """Write the session file (0600 in a 0700 folder) and return its path."""
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = json.dumps(
        {"url": session.url, "token": session.token, "username": session.username}, indent=2
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(data + "\n")
    os.chmod(path, 0o600)  # an older file may have had a wider mode
    return path


def load() -> Session:
    """The session to use: environment first, then the file; exit 3 when there is none."""
    url, token = os.environ.get("OPOS_URL", ""), os.environ.get("OPOS_TOKEN", "")
    username = ""
    path = config_path()
    if not (url and token) and path.exists():
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CliError(Exit.CONNECTION, f"cannot read {path}: {exc}; run opos login") from exc
        url = url or stored.get("url", "")
        token = token or stored.get("token", "")
        username = stored.get("username", "")
    if not url or not token:
        raise CliError(Exit.CONNECTION, "not logged in: run opos login URL")
    return Session(normalise_url(url), token, username)


def forget() -> bool:
    """Remove the session file; True if there was one."""
    path = config_path()
    if path.exists():
        path.unlink()
        return True
    return False

"""Run the real ``opos`` console script as a subprocess against a live test server.

Each test gets its own HOME and XDG_CONFIG_HOME under tmp_path, so a login
never touches the developer's own ``~/.config/opos``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.factories import (
    ExperimentFactory,
    PhysicsGroupFactory,
    StageTemplateFactory,
    UserFactory,
    WorkflowTemplateFactory,
    grant,
)

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


class Cli:
    """``cli("requests", "list")`` runs ``opos requests list`` with an isolated config folder."""

    def __init__(self, tmp_path: Path):
        self.home = tmp_path / "home"
        self.config_home = tmp_path / "config"
        self.home.mkdir()
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("OPOS_", "DJANGO_", "DATABASE_"))
        }
        self.env.update(
            {"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.config_home), "PYTHONUTF8": "1"}
        )

    @property
    def config_file(self) -> Path:
        return self.config_home / "opos" / "config.json"

    def __call__(self, *args: str, stdin: str = "", env: dict | None = None, timeout: float = 60):
        done = subprocess.run(
            [sys.executable, "-m", "opos_cli.main", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            cwd=ROOT,
            timeout=timeout,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def login(self, url: str, username: str = "liaison", password: str = "pw") -> Result:  # noqa: S107
        result = self("login", url, "--username", username, stdin=f"{password}\n")
        assert result.code == 0, result.err
        return result


@pytest.fixture
def cli(tmp_path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture(autouse=True)
def _fresh_login_throttle():
    # The live server shares this process's cache: earlier logins must not throttle ours.
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@dataclass
class Dune:
    experiment: object
    group: object
    template: object
    liaison: object
    operator: object
    outsider: object


@pytest.fixture
def dune(transactional_db) -> Dune:
    """DUNE with a working group, a workflow template, a liaison, an operator and an outsider."""
    experiment = ExperimentFactory(slug="dune", name="DUNE")
    group = PhysicsGroupFactory(experiment=experiment, slug="oscillations", name="Oscillations")
    template = WorkflowTemplateFactory(experiment=experiment, name="genie")
    StageTemplateFactory(template=template, name="gen")
    liaison = grant(UserFactory(username="liaison"), "liaison", experiment)
    operator = grant(UserFactory(username="op"), "operator")
    outsider = UserFactory(username="outsider")
    return Dune(experiment, group, template, liaison, operator, outsider)


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"

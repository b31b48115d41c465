"""Fixtures for the batch backend tests: element folders, polling, a real Slurm cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from campaigns.batch import TERMINAL_STATES, BatchBackend, JobRef, JobStatus
from tests.parallel import slurm_in_use


@pytest.fixture
def make_array(tmp_path: Path) -> Callable[..., Path]:
    """Create ``array_dir``, and element folders ``0..size-1`` only with ``files`` in them.

    ``files(index) -> {name: text}`` writes each element's input files. Without them no
    element folder exists before the backend's shim makes it when the element starts.
    """

    def make(size: int, files: Callable[[int], dict[str, str]] | None = None, name: str = "arr"):
        array_dir = tmp_path / name
        array_dir.mkdir(parents=True)
        for index in range(size if files else 0):
            element = array_dir / str(index)
            element.mkdir()
            for file_name, text in (files(index) if files else {}).items():
                (element / file_name).write_text(text)
        return array_dir

    return make


@pytest.fixture
def wait_terminal() -> Callable[..., dict[str, JobStatus]]:
    """Poll ``backend.status(refs)`` until every job is terminal (bounded); return the states."""

    def wait(
        backend: BatchBackend, refs: Sequence[JobRef], timeout: float = 30.0, interval=0.2
    ) -> dict[str, JobStatus]:
        deadline = time.monotonic() + timeout
        while True:
            states = backend.status(refs)
            if all(s.state in TERMINAL_STATES for s in states.values()):
                return states
            if time.monotonic() > deadline:
                pytest.fail(f"jobs not terminal after {timeout}s: {states}")
            time.sleep(interval)

    return wait


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """A responding Slurm cluster (scripts/slurm/up.sh), else skip.

    With OPOS_REQUIRE_SLURM=1 (CI) a missing cluster fails the tests instead of skipping them.
    """
    required = os.environ.get("OPOS_REQUIRE_SLURM") == "1"
    problem = None
    missing = [
        c for c in ("sbatch", "squeue", "scancel", "scontrol", "sinfo") if not shutil.which(c)
    ]
    if missing:
        problem = f"Slurm client commands not installed: {', '.join(missing)}"
    else:
        try:
            # Not while a fault trial of another test worker has the controller stopped.
            with slurm_in_use():
                done = subprocess.run(
                    ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15
                )
            if done.returncode != 0:
                problem = f"sinfo does not respond: {done.stderr.strip()}"
        except subprocess.TimeoutExpired:
            problem = "sinfo timed out"
    if problem:
        message = f"{problem} (start one with: sudo scripts/slurm/up.sh)"
        if required:
            pytest.fail(f"OPOS_REQUIRE_SLURM=1 but {message}")
        pytest.skip(message)


XROOTD_URL = os.environ.get("OPOS_XROOTD_URL", "root://127.0.0.1:1094//data")


@pytest.fixture(scope="session")
def xrootd_server() -> str:
    """The root:// base of a responding XRootD server (scripts/xrootd/up.sh), else skip.

    With OPOS_REQUIRE_XROOTD=1 (CI) a missing server fails the tests instead of skipping them.
    """
    required = os.environ.get("OPOS_REQUIRE_XROOTD") == "1"
    problem = None
    missing = [c for c in ("xrdcp", "xrdfs") if not shutil.which(c)]
    server, _, path = XROOTD_URL.partition("//")[2].partition("/")
    if missing:
        problem = f"XRootD client commands not installed: {', '.join(missing)}"
    else:
        try:
            done = subprocess.run(
                ["xrdfs", f"root://{server}", "stat", "/" + path.lstrip("/")],
                capture_output=True,
                text=True,
                timeout=20,
                env={**os.environ, "XRD_CONNECTIONRETRY": "1"},
            )
            if done.returncode != 0:
                problem = f"no XRootD server answers at {XROOTD_URL}: {done.stderr.strip()}"
        except subprocess.TimeoutExpired:
            problem = f"the XRootD server at {XROOTD_URL} did not answer in 20 s"
    if problem:
        message = f"{problem} (start one with: sudo scripts/xrootd/up.sh)"
        if required:
            pytest.fail(f"OPOS_REQUIRE_XROOTD=1 but {message}")
        pytest.skip(message)
    return XROOTD_URL.rstrip("/")


# Fixtures of the execution tests (tests/campaigns/test_exec_*.py), defined with their helpers.
from tests.campaigns.exec_support import exec_env, fake_backend  # noqa: E402, F401

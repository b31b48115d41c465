"""docker-compose.yml and the Procfile name real entry points of the project."""

import importlib
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[2]


def compose_commands() -> dict[str, list[str]]:
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return {
        name: service["command"]
        for name, service in spec["services"].items()
        if service.get("build") == "."
    }


def procfile_commands() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {
        name: command.split()
        for name, command in (line.split(":", 1) for line in lines if line.strip())
    }


def check_entry_point(argv: list[str]) -> None:
    program = Path(argv[0]).name
    if program in {"python", "python3"} and argv[1:3] == ["-m", "opos.supervise"]:
        # The supervisor's own options, then the supervised command after "--".
        check_entry_point(argv[argv.index("--") + 1 :])
        return
    if program == "gunicorn":
        target = next(a for a in argv[1:] if ":" in a and not a.startswith("-"))
        module, attribute = target.split(":")
        assert callable(getattr(importlib.import_module(module), attribute))
    elif program == "celery":
        app_name = argv[argv.index("-A") + 1]
        module = importlib.import_module(app_name)
        assert module.celery_app.main == "opos"
        assert argv[argv.index("-A") + 2] in {"worker", "beat"}
    elif program in {"python", "python3"}:
        assert argv[1] == "manage.py"
        assert argv[2] in get_commands(), f"no management command {argv[2]!r}"
    else:
        pytest.fail(f"unknown entry point {argv!r}")


def test_make_run_supervises_worker_and_beat():
    commands = procfile_commands()
    for name in ("worker", "beat"):
        assert commands[name][1:3] == ["-m", "opos.supervise"], name


def test_compose_has_the_production_services():
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert {"postgres", "redis", "web", "worker", "beat"} <= set(spec["services"])
    assert (ROOT / "Dockerfile").exists()


@pytest.mark.parametrize(("name", "argv"), sorted(compose_commands().items()))
def test_compose_command_is_a_real_entry_point(name, argv):
    check_entry_point(argv)


@pytest.mark.parametrize(("name", "argv"), sorted(procfile_commands().items()))
def test_procfile_command_is_a_real_entry_point(name, argv):
    check_entry_point(argv)

"""The settings module: embedded defaults, PostgreSQL/Redis by URL, clear errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "db = settings.DATABASES['default']; "
    "print(json.dumps({'engine': db['ENGINE'], 'name': str(db['NAME']), "
    "'options': db.get('OPTIONS', {}), 'broker': settings.CELERY_BROKER_URL, "
    "'debug': settings.DEBUG, 'backend': settings.OPOS_DEFAULT_BACKEND, "
    "'ssl_redirect': getattr(settings, 'SECURE_SSL_REDIRECT', False)}))"
)


def run_settings(tmp_path, code=PROBE, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_"))}
    clean.pop("SECRET_KEY", None)
    clean.pop("OPOS_ENV", None)
    clean.pop("DEBUG", None)
    clean.update({"DJANGO_SETTINGS_MODULE": "opos.settings", "OPOS_DATA_DIR": str(tmp_path)})
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_embedded_default_is_sqlite_filesystem_broker_local_backend(tmp_path):
    result = run_settings(tmp_path)
    assert result.returncode == 0, result.stderr
    conf = json.loads(result.stdout)
    assert conf["engine"] == "django.db.backends.sqlite3"
    assert conf["name"] == str(tmp_path / "opos.sqlite3")
    assert conf["options"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in conf["options"]["init_command"]
    assert conf["broker"] == "filesystem://"
    assert conf["backend"] == "local"
    assert conf["debug"] is False
    # A development secret key is generated once and kept out of the repo.
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_urls_switch_to_postgresql_and_redis(tmp_path):
    result = run_settings(
        tmp_path,
        DATABASE_URL="postgres://opos:pw@db.example:5433/opos",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/3",
    )
    assert result.returncode == 0, result.stderr
    conf = json.loads(result.stdout)
    assert conf["engine"] == "django.db.backends.postgresql"
    assert conf["name"] == "opos"
    assert conf["broker"] == "redis://127.0.0.1:6379/3"


@pytest.mark.parametrize(
    "url", ["postgres://", "nosuchdb://x/y", "postgres://user@host:notaport/db"]
)
def test_malformed_database_url_is_one_clear_line(tmp_path, url):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "OPOS_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "DATABASE_URL" in lines[0]


def test_production_without_secret_key_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k != "SECRET_KEY"},
            "OPOS_ENV": "production",
            "ALLOWED_HOSTS": "opos.example.org",
            "OPOS_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "configuration error: SECRET_KEY must be set when OPOS_ENV=production"
    )


def test_production_settings_pass_the_deploy_check(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            **os.environ,
            "OPOS_ENV": "production",
            "SECRET_KEY": "x" * 64 + "-a-long-random-production-key-with-variety-0123456789",
            "ALLOWED_HOSTS": "opos.example.org",
            "OPOS_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bad_boolean_is_named(tmp_path):
    result = run_settings(tmp_path, DEBUG="perhaps")
    assert result.returncode != 0
    assert "DEBUG='perhaps' is not a boolean" in result.stderr

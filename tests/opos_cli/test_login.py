"""``opos login``: a token stored 0600 in the config folder; exit 3 on auth or network trouble."""

from __future__ import annotations

import json
import stat

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_login_stores_url_and_token_readable_only_by_the_user(cli, live_server, dune):
    result = cli.login(live_server.url)

    assert f"Logged in to {live_server.url} as liaison" in result.out
    stored = json.loads(cli.config_file.read_text())
    assert stored["url"] == live_server.url and stored["username"] == "liaison"
    from knox.crypto import hash_token
    from knox.models import AuthToken

    # The database holds the token's digest, not the token.
    (row,) = AuthToken.objects.filter(user=dune.liaison)
    assert row.digest == hash_token(stored["token"]) != stored["token"]
    assert stat.S_IMODE(cli.config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.config_file.parent.stat().st_mode) == 0o700
    # The token works for the next command.
    assert cli("requests", "list").code == 0


def test_login_takes_the_password_from_the_environment_and_prints_json(cli, live_server, dune):
    result = cli(
        "login", f"{live_server.url}/api/v1/", "-u", "op", "--json", env={"OPOS_PASSWORD": "pw"}
    )
    assert result.code == 0, result.err
    assert result.json() == {
        "url": live_server.url,
        "username": "op",
        "config": str(cli.config_file),
    }


def test_an_old_config_file_gets_mode_0600(cli, live_server, dune):
    cli.config_file.parent.mkdir(parents=True)
    cli.config_file.write_text("{}")
    cli.config_file.chmod(0o644)
    cli.login(live_server.url)
    assert stat.S_IMODE(cli.config_file.stat().st_mode) == 0o600


def test_wrong_password_is_exit_3_and_stores_nothing(cli, live_server, dune):
    result = cli("login", live_server.url, "--username", "liaison", stdin="nope\n")
    assert result.code == 3
    assert "wrong username or password" in result.err
    assert not cli.config_file.exists()


def test_unreachable_server_is_exit_3(cli, closed_port_url, db):
    result = cli("login", closed_port_url, "--username", "liaison", stdin="pw\n")
    assert result.code == 3
    assert f"cannot reach {closed_port_url}" in result.err
    # And once logged in somewhere that went away:
    cli.config_file.parent.mkdir(parents=True)
    cli.config_file.write_text(json.dumps({"url": closed_port_url, "token": "t"}))
    result = cli("requests", "list", "--json")
    assert result.code == 3
    assert result.json()["exit"] == 3 and "cannot reach" in result.json()["error"]


def test_not_logged_in_or_a_revoked_token_is_exit_3(cli, live_server, dune):
    result = cli("requests", "list")
    assert result.code == 3 and "not logged in: run opos login URL" in result.err
    cli.config_file.parent.mkdir(parents=True)
    cli.config_file.write_text(json.dumps({"url": live_server.url, "token": "revoked"}))
    result = cli("requests", "list")
    assert result.code == 3 and "not authenticated" in result.err


def test_environment_overrides_the_file(cli, live_server, dune):
    from requests_app.services import tokens

    token = tokens.issue(dune.operator)[1]
    result = cli("requests", "list", env={"OPOS_URL": live_server.url, "OPOS_TOKEN": token})
    assert result.code == 0, result.err


def test_usage_errors_are_exit_2(cli, db):
    assert cli().code == 2
    assert cli("requests").code == 2
    assert cli("requests", "frobnicate").code == 2
    assert cli("login", "ftp://example.org", "--username", "x", stdin="pw\n").code == 2
    assert cli("login", "http://127.0.0.1:9", stdin="").code == 2  # no --username, no terminal
    assert cli("--help").code == 0


def test_logout_forgets_the_token_and_revokes_it_on_the_server(cli, live_server, dune):
    from knox.models import AuthToken

    cli.login(live_server.url)
    token = json.loads(cli.config_file.read_text())["token"]
    result = cli("logout", "--json")
    assert result.code == 0 and result.json() == {"logged_out": True, "revoked": True}
    assert not cli.config_file.exists()
    assert cli("requests", "list").code == 3
    # The token itself no longer works anywhere.
    assert not AuthToken.objects.filter(token_key=token[:15]).exists()
    again = cli("requests", "list", env={"OPOS_URL": live_server.url, "OPOS_TOKEN": token})
    assert again.code == 3

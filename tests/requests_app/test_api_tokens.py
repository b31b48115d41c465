"""API tokens: hashed in the database, expiring, revoked on a password change, and listed
and revoked by their own user only (API and the account page)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from knox.models import AuthToken

from experiments.models import AuditEvent
from requests_app.services import tokens
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def bearer(api, token):
    client = api()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def login(api, username, password="pw"):  # noqa: S107 - the factories' test password
    response = api().post(
        "/api/v1/auth/token/", {"username": username, "password": password}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()["token"]


def test_a_stolen_database_row_is_not_a_working_token(api, liaison):
    token = login(api, "liaison")
    (row,) = AuthToken.objects.filter(user=liaison)
    # Nothing in the row is the token, and nothing in it signs in.
    stored = [
        str(value) for value in AuthToken.objects.filter(user=liaison).values().get().values()
    ]
    assert token not in stored
    for stolen in (row.digest, row.token_key, row.digest[:64], row.token_key + "0" * 49):
        assert bearer(api, stolen).get("/api/v1/experiments/").status_code == 401
    assert bearer(api, token).get("/api/v1/experiments/").status_code == 200


def test_an_expired_token_is_refused_and_removed(api, liaison, settings):
    token = login(api, "liaison")
    row = AuthToken.objects.get(user=liaison)
    ttl = dt.timedelta(days=settings.OPOS_API_TOKEN_TTL_DAYS)
    assert round((row.expiry - row.created).total_seconds()) == ttl.total_seconds()
    # Time travel: the token's expiry is now in the past.
    AuthToken.objects.filter(pk=row.pk).update(expiry=timezone.now() - dt.timedelta(seconds=1))

    assert bearer(api, token).get("/api/v1/experiments/").status_code == 401
    assert not AuthToken.objects.filter(pk=row.pk).exists()


def test_a_password_change_revokes_every_token(api, liaison):
    first, second = login(api, "liaison"), login(api, "liaison")
    liaison.refresh_from_db()
    liaison.last_name = "Unchanged password"
    liaison.save()  # other changes keep the tokens
    assert bearer(api, first).get("/api/v1/experiments/").status_code == 200

    liaison.set_password("a-new-password")
    liaison.save()

    for token in (first, second):
        assert bearer(api, token).get("/api/v1/experiments/").status_code == 401
    assert not AuthToken.objects.filter(user=liaison).exists()
    event = AuditEvent.objects.get(action="token.revoked_all")
    assert event.data == {"reason": "password changed", "tokens": 2}
    assert login(api, "liaison", "a-new-password")


def test_users_list_and_revoke_their_own_tokens_only(api, liaison, other_liaison):
    mine, spare = login(api, "liaison"), login(api, "liaison")
    theirs = login(api, "other")
    client = bearer(api, mine)

    listing = client.get("/api/v1/auth/tokens/")

    assert listing.status_code == 200
    keys = {t["key"]: t for t in listing.json()}
    assert set(keys) == {mine[:15], spare[:15]}  # not the other user's
    assert keys[mine[:15]]["current"] is True and keys[spare[:15]]["current"] is False
    assert all(t["expiry"] for t in keys.values())
    assert mine not in listing.content.decode() and spare not in listing.content.decode()

    # Another user's token: 404, as for a key that does not exist, and it still works.
    assert client.delete(f"/api/v1/auth/tokens/{theirs[:15]}/").status_code == 404
    assert client.delete("/api/v1/auth/tokens/000000000000000/").status_code == 404
    assert bearer(api, theirs).get("/api/v1/experiments/").status_code == 200

    assert client.delete(f"/api/v1/auth/tokens/{spare[:15]}/").status_code == 204
    assert bearer(api, spare).get("/api/v1/experiments/").status_code == 401
    assert AuditEvent.objects.filter(action="token.revoked", actor=liaison).count() == 1
    # Revoking the token in use signs this client out.
    assert client.delete(f"/api/v1/auth/tokens/{mine[:15]}/").status_code == 204
    assert client.get("/api/v1/auth/tokens/").status_code == 401


def test_token_list_needs_a_signed_in_user(api, db):
    assert api().get("/api/v1/auth/tokens/").status_code == 401
    assert api().delete("/api/v1/auth/tokens/abc/").status_code == 401


def test_account_page_lists_and_revokes_own_tokens(api, client, liaison, other_liaison):
    mine, spare = login(api, "liaison"), login(api, "liaison")
    theirs = login(api, "other")
    client.force_login(liaison)

    page = client.get("/account/tokens/")

    assert page.status_code == 200
    html = page.content.decode()
    assert mine[:15] in html and spare[:15] in html and theirs[:15] not in html
    assert mine not in html  # never the token itself
    assert "/account/tokens/" in client.get("/").content.decode()  # in the account menu

    refused = client.post("/account/tokens/", {"key": theirs[:15]}, follow=True)
    assert "no such token of yours" in refused.content.decode()
    assert bearer(api, theirs).get("/api/v1/experiments/").status_code == 200

    client.post("/account/tokens/", {"key": spare[:15]})
    assert bearer(api, spare).get("/api/v1/experiments/").status_code == 401
    assert bearer(api, mine).get("/api/v1/experiments/").status_code == 200

    client.post("/account/tokens/", {"all": "1"})
    assert bearer(api, mine).get("/api/v1/experiments/").status_code == 401
    assert bearer(api, theirs).get("/api/v1/experiments/").status_code == 200


def test_token_authentication_is_one_query(api, liaison):
    token = login(api, "liaison")
    client = bearer(api, token)
    with CaptureQueriesContext(connection) as anonymous_cost:
        api().get("/api/v1/auth/tokens/")
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/auth/tokens/").status_code == 200
    token_queries = [q["sql"] for q in queries if "knox_authtoken" in q["sql"]]
    # One to authenticate (user joined in), one for the listing itself.
    assert len(token_queries) == 2, token_queries
    assert len(anonymous_cost) == 0


def test_issuing_drops_the_users_expired_tokens(liaison):
    old, _ = tokens.issue(liaison)
    AuthToken.objects.filter(pk=old.pk).update(expiry=timezone.now() - dt.timedelta(days=1))
    tokens.issue(liaison)
    assert AuthToken.objects.filter(user=liaison).count() == 1
    assert list(tokens.tokens_of(liaison)) == list(AuthToken.objects.filter(user=liaison))


def test_other_users_and_admin_password_changes(api, operator):
    victim = UserFactory(username="victim")
    victim.set_password("pw")
    victim.save()
    token = login(api, "victim")
    # An admin resetting the password (any save of a new hash) revokes the tokens too.
    victim.set_password("reset-by-admin")
    victim.save(update_fields=["password"])
    assert bearer(api, token).get("/api/v1/experiments/").status_code == 401


def test_plain_tokens_of_before_are_hashed_by_the_migration(api, liaison):
    """The rows DRF's authtoken app left (the token in clear) become knox rows: the token
    keeps working until it expires, and no plain token is left in the database."""
    import importlib
    from types import SimpleNamespace

    from django.apps import apps

    migration = importlib.import_module("requests_app.migrations.0006_hash_api_tokens")
    plain = "0f" * 20  # DRF's format: 40 hex characters
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamp, "
            "user_id integer)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)", [plain, timezone.now(), liaison.pk]
        )
    try:
        # The migration uses its schema editor's connection only (SQLite cannot open a
        # schema editor inside the test's transaction).
        migration.hash_plain_tokens(apps, SimpleNamespace(connection=connection))
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM authtoken_token")
            assert cursor.fetchone()[0] == 0
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE authtoken_token")

    row = AuthToken.objects.get(user=liaison)
    assert row.digest != plain and row.token_key == plain[:15] and row.expiry > timezone.now()
    assert bearer(api, plain).get("/api/v1/experiments/").status_code == 200

"""Browser sign-in, sign-out, throttling, and the home page by role."""

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _clear_throttle():
    cache.clear()


def test_protected_pages_redirect_to_sign_in(client, db):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_sign_in_and_out(client, liaison):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert b'<label for="id_username">' in page.content
    response = client.post("/accounts/login/", {"username": "liaison", "password": "pw"})
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 200
    assert b"File production requests" in home.content
    assert b"DUNE" in home.content
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302


def test_wrong_password_shows_error(client, liaison):
    response = client.post("/accounts/login/", {"username": "liaison", "password": "bad"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_repeated_failures_are_throttled(client, liaison):
    for _ in range(10):
        client.post("/accounts/login/", {"username": "liaison", "password": "bad"})
    response = client.post("/accounts/login/", {"username": "liaison", "password": "pw"})
    assert response.status_code == 429
    assert b"Too many failed sign-in attempts" in response.content


def test_home_tells_each_role_where_to_go(client, operator, physicist):
    client.force_login(operator)
    assert b"Operations" in client.get("/").content
    client.force_login(physicist)
    content = client.get("/").content
    assert b"Follow production" in content
    assert b"Operations" not in content


def test_csrf_is_enforced_on_sign_in(liaison):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/accounts/login/", {"username": "liaison", "password": "pw"})
    assert response.status_code == 403

"""``POST /api/v1/auth/token/`` and token use."""

from tests.factories import UserFactory


def test_token_for_good_credentials_and_use(api, experiment, liaison):
    client = api()
    response = client.post(
        "/api/v1/auth/token/", {"username": "liaison", "password": "pw"}, format="json"
    )
    assert response.status_code == 200
    token = response.json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    listing = client.get("/api/v1/experiments/")
    assert listing.status_code == 200
    assert [e["slug"] for e in listing.json()["results"]] == ["dune"]
    # A second login (another machine) gets a token of its own; both work.
    again = api().post("/api/v1/auth/token/", {"username": "liaison", "password": "pw"})
    assert again.json()["token"] != token
    assert response.json()["expiry"] and again.json()["expiry"]
    assert listing.status_code == client.get("/api/v1/experiments/").status_code == 200


def test_wrong_credentials_are_refused(api, db):
    UserFactory(username="someone")
    response = api().post("/api/v1/auth/token/", {"username": "someone", "password": "nope"})
    assert response.status_code == 400
    assert "Unable to log in" in response.json()["non_field_errors"][0]


def test_missing_fields_are_named(api, db):
    response = api().post("/api/v1/auth/token/", {"username": "x"})
    assert response.status_code == 400
    assert "password" in response.json()


def test_bad_token_and_no_token_are_401(api, db):
    client = api()
    assert client.get("/api/v1/experiments/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert client.get("/api/v1/experiments/").status_code == 401


def test_api_root_and_docs(api, operator, client):
    assert api(operator).get("/api/v1/").status_code == 200
    client.force_login(operator)
    assert client.get("/api/schema/").status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    # Swagger UI is served from the installed sidecar package, not a CDN.
    assert b"cdn" not in docs.content.lower()

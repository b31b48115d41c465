"""The OpenAPI schema generates for every endpoint with no warnings or errors."""

import pytest
import yaml
from django.core.management import call_command

REQUEST_PATHS = {
    "/api/v1/requests/": {"get", "post"},
    "/api/v1/requests/{id}/": {"get", "patch"},
    "/api/v1/requests/{id}/transitions/": {"post"},
    "/api/v1/requests/{id}/history/": {"get"},
    "/api/v1/requests/{id}/comments/": {"get", "post"},
    "/api/v1/requests/{id}/eligibility/": {"get"},
}


def generate(path, *options) -> dict:
    # --validate checks the result against the OpenAPI specification.
    call_command("spectacular", "--validate", *options, "--file", str(path))
    return yaml.safe_load(path.read_text())


@pytest.fixture
def schema(tmp_path, db):
    return generate(tmp_path / "schema.yaml")


def test_schema_generates_without_warnings(tmp_path, db):
    # --fail-on-warn: any warning or error, from any app's endpoints, fails.
    assert generate(tmp_path / "schema.yaml", "--fail-on-warn")["openapi"].startswith("3.")


def test_request_endpoints_are_documented(schema):
    for path, methods in REQUEST_PATHS.items():
        assert path in schema["paths"], path
        assert methods <= set(schema["paths"][path]), path


def test_request_errors_are_documented(schema):
    transitions = schema["paths"]["/api/v1/requests/{id}/transitions/"]["post"]["responses"]
    assert {"200", "400", "403", "404", "409"} <= set(transitions)
    listing = schema["paths"]["/api/v1/requests/"]["get"]
    params = {p["name"] for p in listing["parameters"]}
    assert {
        "experiment",
        "state",
        "physics_group",
        "deadline_before",
        "deadline_after",
        "search",
        "ordering",
        "page",
        "page_size",
    } <= params


def test_schema_is_served(api, operator):
    response = api(operator).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200


def test_a_requests_extensions_are_documented_as_answered(schema):
    """The list of a request's extensions is answered whole (a JSON array, no pages), and a
    refused extension's 400 may be messages by field as well as a problem."""
    operations = schema["paths"]["/api/v1/requests/{id}/extensions/"]
    listed = operations["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed["type"] == "array", listed
    refused = operations["post"]["responses"]["400"]["content"]["application/json"]["schema"]
    assert refused["type"] == "object" and "$ref" not in refused, refused

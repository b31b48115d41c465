"""Bad input: oversized bodies and uploads, malformed YAML templates, unicode and control
characters, huge numbers. Each is a clear 4xx (or the form again) naming the field, and
nothing is stored: the rows are counted before and after.

Run on PostgreSQL as well as SQLite: PostgreSQL refuses NUL characters in text and
numbers beyond a column's range, where SQLite stores anything.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from campaigns.models import Campaign, Dataset, FailureRule
from experiments.models import AuditEvent, ProductionCode, StageTemplate, WorkflowTemplate
from requests_app.models import Comment, ProductionRequest, Sample

# A deadline within the horizon (OPOS_DEADLINE_HORIZON_DAYS) whenever the tests run.
DEADLINE = (dt.date.today() + dt.timedelta(days=365)).isoformat()

pytestmark = pytest.mark.django_db

STORED = (
    ProductionRequest,
    Sample,
    Comment,
    Campaign,
    Dataset,
    FailureRule,
    ProductionCode,
    WorkflowTemplate,
    StageTemplate,
    AuditEvent,
)


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in STORED}


@pytest.fixture
def world(settings, shared_world):
    return shared_world


def api_as(world, role) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {world.token(role)}")
    return client


def page_as(world, role) -> Client:
    client = Client()
    client.force_login(world.users[role])
    return client


def new_request(world, **overrides) -> dict:
    body = {
        "experiment": world.a.slug,
        "physics_group": "secret-a-group",
        "ticket": "RITM0012345",
        "title": "Bad input",
        "deadline": DEADLINE,
        "samples": [
            {
                "name": "line",
                "template": world.a_template.pk,
                "events": 1000,
                "events_per_job": 10,
                "output_dataset": f"{world.a.slug}:bad-input-out",
            }
        ],
    }
    for key, value in overrides.items():
        if key.startswith("sample_"):
            body["samples"][0][key.removeprefix("sample_")] = value
        else:
            body[key] = value
    return body


def refused(response, field: str, status=(400,)) -> None:
    assert response.status_code in status, (response.status_code, response.content[:500])
    assert field.encode() in response.content, response.content[:500]


# --- sizes ---------------------------------------------------------------------------------------


def test_the_limits_are_set(settings):
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE <= 5 * 1024 * 1024
    assert settings.DATA_UPLOAD_MAX_NUMBER_FIELDS <= 2000
    assert settings.FILE_UPLOAD_MAX_MEMORY_SIZE <= 5 * 1024 * 1024


def test_an_oversized_api_body_is_413_or_400_and_stores_nothing(world, settings):
    before = counts()
    body = new_request(world, description="x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10))
    response = api_as(world, "liaison_a").post(
        "/api/v1/requests/", json.dumps(body), content_type="application/json"
    )
    assert response.status_code in (400, 413), response.status_code
    assert counts() == before


def test_an_oversized_form_is_refused_and_stores_nothing(world, settings):
    before = counts()
    response = page_as(world, "liaison_a").post(
        f"/requests/{world.a_request.number}/comments/",
        {"body": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)},
    )
    assert response.status_code in (400, 413)
    too_many = page_as(world, "operator").post(
        "/triage/", {f"f{i}": "x" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 10)}
    )
    assert too_many.status_code == 400
    assert counts() == before


def test_an_upload_over_the_limit_is_refused_by_name(world, monkeypatch):
    from experiments.services import records

    monkeypatch.setattr(records, "MAX_CODE_FILE_BYTES", 1024)
    before = counts()
    response = page_as(world, "operator").post(
        "/code/new/",
        {
            "experiment": world.a.pk,
            "name": "big",
            "version": "1",
            "kind": "script",
            "location": "/code/big.py",
            "owners": [world.users["liaison_a"].pk],
            "upload": SimpleUploadedFile("big.py", b"#" * 5000),
        },
    )
    assert response.status_code in (200, 400)
    assert b"larger than 1,024 bytes" in response.content
    assert counts() == before


def test_a_too_long_comment_is_refused_by_name(world):
    before = counts()
    response = api_as(world, "liaison_a").post(
        f"/api/v1/requests/{world.a_request.pk}/comments/", {"body": "x" * 10001}, format="json"
    )
    refused(response, "body")
    assert counts() == before


# --- templates ---------------------------------------------------------------------------------

BAD_TEMPLATES = [
    ("not: [closed", b"not valid YAML"),
    ("- a list\n- not a mapping\n", b"must be a mapping"),
    ("name: x\nstages: []\n", b"stages"),
    ("name: x\nname: y\nstages: [{name: s}]\n", b"given twice"),
    ("&a [*a]", b"not valid"),  # a self-referencing alias
    ("name: x\nstages:\n  - name: gen\n    code: {name: nope, version: '1'}\n", b"not registered"),
    ("name: x\nstages:\n  - name: gen\n    cores: 100000000000000000000000000000\n", b"cores"),
    ('name: "\\0bad"\nstages: []\n', b"stages"),
    ("!!python/object/apply:os.system ['true']", b"not valid"),
    ("? [a, b]\n: c\nname: x\nstages: [{name: s}]\n", b"unknown field"),
    (
        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
        b"values",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_TEMPLATES)
def test_malformed_templates_are_refused_with_line_and_field(world, text, message):
    before = counts()
    response = page_as(world, "operator").post(
        "/campaigns/templates/import/", {"experiment": world.a.pk, "text": text}
    )
    assert response.status_code in (200, 400)
    assert message in response.content, response.content.decode()[-3000:]
    assert counts() == before


def test_a_huge_or_binary_template_file_is_refused(world):
    before = counts()
    client = page_as(world, "operator")
    for content, message in (
        (b"name: x\n" + b"#" * (300 * 1024), b"too large"),
        (b"\xff\xfe\x00\x00binary", b"not UTF-8"),
    ):
        response = client.post(
            "/campaigns/templates/import/",
            {"experiment": world.a.pk, "file": SimpleUploadedFile("t.yaml", content)},
        )
        assert message in response.content
    assert counts() == before


# --- unicode and control characters --------------------------------------------------------------

STRANGE = [
    "nul\x00byte",
    "bell\x07and\x1b[31mansi",
    "rtl\u202eevil",
    "zero\u200bwidth",
    "emoji 🚀",
    "surrogate \udcff",
]


@pytest.mark.parametrize("text", STRANGE)
def test_strange_characters_in_names_are_refused_or_kept_exactly(world, text):
    before = counts()
    client = api_as(world, "liaison_a")
    # json.dumps escapes everything (a lone surrogate too) the way a client would send it.
    payload = json.dumps(new_request(world, title=text, sample_name=text))
    response = client.post("/api/v1/requests/", payload, content_type="application/json")
    assert response.status_code == 400, response.content
    # The sample name has a strict alphabet: named, nothing stored.
    assert "samples" in response.json()
    assert counts() == before
    ok = client.post(
        "/api/v1/requests/",
        json.dumps(new_request(world, title=f"T {text}")),
        content_type="application/json",
    )
    if "\x00" in text or "\udcff" in text:
        refused(ok, "title")
        assert counts() == before
    else:
        assert ok.status_code == 201, ok.content
        assert ProductionRequest.objects.get(pk=ok.json()["id"]).title == f"T {text}"


@pytest.mark.parametrize("text", STRANGE)
def test_strange_characters_in_comments_datasets_and_notes(world, text):
    client = api_as(world, "operator")
    before = counts()

    def post(url, body):
        return client.post(url, json.dumps(body), content_type="application/json")

    responses = [
        post(f"/api/v1/requests/{world.a_request.pk}/comments/", {"body": text}),
        post("/api/v1/datasets/", {"experiment": world.a.slug, "name": text}),
        post(
            f"/api/v1/campaigns/{world.a_campaign.pk}/actions/", {"action": "pause", "note": text}
        ),
        post(
            "/api/v1/failure-rules/",
            {"failure_class": "fatal", "action": "never", "exit_codes": [3], "description": text},
        ),
        post(
            "/api/v1/campaigns/",
            {"experiment": world.a.slug, "name": text, "deadline": DEADLINE},
        ),
    ]
    for response in responses:
        assert response.status_code < 500, response.content
        if "\x00" in text or "\udcff" in text:
            assert response.status_code == 400, response.content
    if "\x00" in text or "\udcff" in text:
        assert counts() == before


def test_parameters_with_control_characters_never_reach_a_job(world):
    before = counts()
    response = api_as(world, "liaison_a").post(
        "/api/v1/requests/",
        new_request(world, sample_parameters={"seed": "1; rm -rf /\x00"}),
        format="json",
    )
    refused(response, "parameters")
    assert counts() == before
    bad_name = api_as(world, "liaison_a").post(
        "/api/v1/requests/",
        new_request(world, sample_parameters={"se\x00ed": 1, "$(id)": 2}),
        format="json",
    )
    refused(bad_name, "parameters")
    assert counts() == before


# --- huge numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"sample_events": 10**30}, "events"),
        ({"sample_events_per_job": 10**30}, "events_per_job"),
        ({"sample_events": -(10**30)}, "events"),
        ({"sample_events": 0}, "events"),
        ({"sample_parameters": {"seed": 10**30}}, "parameters"),
        ({"sample_parameters": {"seed": 1e308 * 10}}, "parameters"),
        ({"deadline": "99999-01-01"}, "deadline"),
        ({"deadline": "2020-01-01"}, "deadline"),
    ],
)
def test_huge_numbers_in_requests_are_refused_by_name(world, overrides, field):
    before = counts()
    body = json.dumps(new_request(world, **overrides)).replace("Infinity", "1e999")
    response = api_as(world, "liaison_a").post(
        "/api/v1/requests/", body, content_type="application/json"
    )
    refused(response, field)
    assert counts() == before


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        ("post", "/api/v1/campaigns/", {"name": "big", "throttle": 10**30}, "throttle"),
        ("patch", "/api/v1/campaigns/{c}/", {"throttle": 10**30}, "throttle"),
        ("patch", "/api/v1/campaigns/{c}/", {"throttle": 2**31}, "throttle"),
        ("post", "/api/v1/campaigns/{c}/schedule/", {"requests": [10**30]}, "requests"),
        ("post", "/api/v1/campaigns/{c}/remove/", {"request": 10**30}, "request"),
        ("post", "/api/v1/campaigns/{c}/actions/", {"action": "recover", "stage": 10**30}, ""),
        (
            "post",
            "/api/v1/datasets/",
            {"name": "big", "files": [{"name": "f", "size": 10**30, "checksum": "0" * 64}]},
            "size",
        ),
        (
            "post",
            "/api/v1/failure-rules/",
            {"failure_class": "fatal", "action": "never", "max_attempts": 10**30},
            "max_attempts",
        ),
        (
            "post",
            "/api/v1/failure-rules/",
            {"failure_class": "fatal", "action": "never", "exit_codes": [10**30]},
            "exit_codes",
        ),
        (
            "post",
            "/api/v1/failure-rules/",
            {"failure_class": "fatal", "action": "never", "position": 10**30},
            "position",
        ),
    ],
)
def test_huge_numbers_elsewhere_are_refused_by_name(world, method, url, body, field):
    before = counts()
    if url == "/api/v1/campaigns/":
        body = {"experiment": world.a.slug, "deadline": DEADLINE, **body}
    elif url == "/api/v1/datasets/":
        body = {"experiment": world.a.slug, **body}
    response = getattr(api_as(world, "operator"), method)(
        url.format(c=world.a_campaign.pk), body, format="json"
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.content)
    assert field.encode() in response.content
    assert counts() == before


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/requests/99999999999999999999999999/",
        "/api/v1/jobs/?campaign=99999999999999999999999999",
        "/api/v1/jobs/?stage=-99999999999999999999999999&index=1e400",
        "/api/v1/campaigns/99999999999999999999999999/plan/",
        "/api/v1/campaigns/99999999999999999999999999/progress/",
        "/api/v1/requests/?page=99999999999999999999999999",
        "/api/v1/requests/?page_size=99999999999999999999999999",
        "/api/v1/requests/?deadline_before=99999-99-99",
        "/api/v1/datasets/99999999999999999999999999/files/",
        "/api/v1/audit/?created_after=not-a-date",
    ],
)
def test_huge_numbers_in_urls_are_4xx(world, url):
    response = api_as(world, "operator").get(url)
    assert response.status_code in (200, 400, 404), (response.status_code, response.content)
    assert response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    "url",
    [
        "/campaigns/99999999999999999999999999/",
        "/campaigns/stages/99999999999999999999999999/jobs/?job=99999999999999999999999999",
        "/requests/?page=99999999999999999999999999",
        "/monitoring/campaigns/99999999999999999999999999/",
        "/monitoring/jobs/99999999999999999999999999/log/",
        "/code/99999999999999999999999999/approve/",
    ],
)
def test_huge_numbers_in_page_urls_are_4xx(world, url):
    response = page_as(world, "operator").get(url)
    assert response.status_code in (200, 404, 405), response.status_code


# --- NUL characters where a value is looked up (PostgreSQL cannot compare them) --------------

NUL_QUERIES = [
    "/api/v1/requests/?search=a%00b",
    "/api/v1/requests/?experiment=a%00b",
    "/api/v1/requests/?physics_group=a%00b",
    "/api/v1/requests/?state=a%00b",
    "/api/v1/campaigns/?search=a%00b",
    "/api/v1/templates/?search=a%00b",
    "/api/v1/datasets/?name=a%00b",
    "/api/v1/datasets/?experiment=a%00b",
    "/api/v1/jobs/?backend=a%00b",
    "/api/v1/experiments/?search=a%00b",
    "/api/v1/audit/?search=a%00b&actor=a%00b",
    "/api/v1/requests/REQ-2026-0001%00/",
]


@pytest.mark.parametrize("url", NUL_QUERIES)
def test_nul_in_query_strings_is_4xx_or_nothing_found(world, url):
    response = api_as(world, "operator").get(url)
    assert response.status_code in (200, 400, 404), (response.status_code, response.content)


NUL_PAGES = [
    "/requests/?q=a%00b",
    "/campaigns/datasets/?q=a%00b",
    "/audit/?q=a%00b&experiment=a%00b",
    "/triage/?experiment=a%00b",
    "/monitoring/experiments/a%00b/",
    "/requests/a%00b/",
]


@pytest.mark.parametrize("url", NUL_PAGES)
def test_nul_in_page_urls_is_4xx_or_nothing_found(world, url):
    response = page_as(world, "operator").get(url)
    assert response.status_code in (200, 400, 404), response.status_code


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/requests/", {"experiment": "a\x00b"}, "experiment"),
        ("/api/v1/campaigns/", {"experiment": "a\x00b"}, "experiment"),
        ("/api/v1/datasets/", {"experiment": "a\x00b", "name": "n"}, "experiment"),
        ("/api/v1/requests/", {"sample_template": "a\x00b"}, "template"),
        ("/api/v1/requests/", {"physics_group": "a\x00b"}, "physics_group"),
    ],
)
def test_nul_in_looked_up_values_is_refused_by_name(world, url, body, field):
    before = counts()
    if url == "/api/v1/requests/":
        body = new_request(world, **body)
    else:
        body = {"name": "nul", "deadline": DEADLINE, **body}
    response = api_as(world, "operator").post(
        url, json.dumps(body), content_type="application/json"
    )
    refused(response, field)
    assert counts() == before


def test_nul_in_an_assignee_is_refused_by_name(world):
    response = api_as(world, "operator").patch(
        f"/api/v1/requests/{world.a_request.pk}/",
        json.dumps({"assignee": "op\x00"}),
        content_type="application/json",
    )
    refused(response, "assignee")

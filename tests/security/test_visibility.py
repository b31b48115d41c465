"""Nothing of another experiment in lists, counts, search, exports, metrics or errors.

The matrix checks every route's body for A's marker; these tests check that the lists
B's liaison sees are not empty by accident (B's own work is there), that counts count
only B's work, and that metrics, which name every experiment, reach operators only.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from tests.security.world import leaks

# A deadline within the horizon (OPOS_DEADLINE_HORIZON_DAYS) whenever the tests run.
DEADLINE = (dt.date.today() + dt.timedelta(days=365)).isoformat()

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(settings, shared_world):
    settings.OPOS_METRICS_TOKEN = ""
    settings.OPOS_METRICS_ALLOWED_NETWORKS = []
    cache.clear()
    return shared_world


def api_as(world, role) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {world.token(role)}")
    return client


def page_as(world, role) -> Client:
    client = Client()
    client.force_login(world.users[role])
    return client


LISTS = [
    ("/api/v1/requests/", "Bravo request"),
    ("/api/v1/campaigns/", "BRAVO-B-CAMPAIGN"),
    ("/api/v1/datasets/", "BRAVO-B-DATASET"),
    ("/api/v1/templates/", "bravo-template"),
    ("/api/v1/experiments/", "Bravo"),
    ("/api/v1/jobs/", "bravo-b-array_0"),
    ("/api/v1/submissions/", "bravo-b-token"),
]


@pytest.mark.parametrize(("url", "own"), LISTS)
def test_b_sees_its_own_work_and_nothing_of_a(world, url, own):
    body = api_as(world, "liaison_b").get(url).content
    assert own.encode() in body, url
    assert not leaks(body), url


def test_counts_count_only_the_callers_experiments(world):
    experiments = api_as(world, "liaison_b").get("/api/v1/experiments/").json()
    assert experiments["count"] == 1
    (bravo,) = experiments["results"]
    assert bravo["open_requests"] == 2  # B's submitted and B's approved request, nothing of A
    for url in ("/api/v1/requests/", "/api/v1/campaigns/", "/api/v1/jobs/", "/api/v1/stuck/"):
        operator = api_as(world, "operator").get(url).json()["count"]
        b = api_as(world, "liaison_b").get(url).json()["count"]
        assert 0 < b < operator, url


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/requests/?search=SECRET",
        "/api/v1/requests/?search=SECRETA0000001",
        "/api/v1/campaigns/?search=SECRET",
        "/api/v1/templates/?search=SECRET",
        "/api/v1/datasets/?name=SECRET",
        "/api/v1/experiments/?search=secret",
        "/api/v1/requests/?experiment=secret-a-exp",
        "/api/v1/jobs/?campaign={campaign}",
        "/api/v1/submissions/?campaign={campaign}",
        "/api/v1/stuck/?campaign={campaign}",
    ],
)
def test_search_and_filters_find_nothing_of_a(world, url):
    response = api_as(world, "liaison_b").get(url.format(campaign=world.a_campaign.pk))
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.json()["count"] == 0
    assert not leaks(response.content)


@pytest.mark.parametrize(
    "url",
    [
        "/requests/?q=SECRET",
        "/requests/?experiment=secret-a-exp",
        "/campaigns/datasets/?q=SECRET",
        "/campaigns/?show=all",
        "/campaigns/stuck/",
        "/campaigns/templates/",
        "/monitoring/",
    ],
)
def test_pages_search_finds_nothing_of_a(world, url):
    response = page_as(world, "liaison_b").get(url, follow=True)
    assert response.status_code == 200
    asked = dict(parse_qsl(urlsplit(url).query))  # echoed back in the filter form: no leak
    assert not leaks(response.content, asked)


def test_csv_export_of_b_has_bs_work_only(world):
    response = page_as(world, "liaison_b").get(
        f"/monitoring/experiments/{world.b.slug}/progress.csv"
    )
    assert response.status_code == 200
    assert b"BRAVO-B-CAMPAIGN" in response.content
    assert not leaks(response.content)
    # ... and A's export is not B's to take.
    other = page_as(world, "liaison_b").get(f"/monitoring/experiments/{world.a.slug}/progress.csv")
    assert other.status_code == 404


def test_metrics_name_experiments_so_only_operators_read_them(world, settings):
    as_operator = page_as(world, "operator").get("/metrics")
    assert as_operator.status_code == 200
    assert world.a.slug.encode() in as_operator.content  # the labels do name experiments
    for role in ("liaison_a", "physicist_a", "liaison_b"):
        response = page_as(world, role).get("/metrics")
        assert response.status_code == 403
        assert not leaks(response.content)
    assert Client().get("/metrics").status_code == 403
    # With a token configured, a wrong token gets 401 and no metrics.
    settings.OPOS_METRICS_TOKEN = "s3cret-token"
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    assert not leaks(wrong.content)
    right = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert right.status_code == 200


def test_refusals_name_nothing_of_a(world):
    b = api_as(world, "liaison_b")
    attempts = [
        b.post(f"/api/v1/requests/{world.a_request.pk}/transitions/", {"action": "cancel"}),
        b.post(f"/api/v1/requests/{world.a_request.pk}/comments/", {"body": "hi"}),
        b.patch(f"/api/v1/requests/{world.a_draft.pk}/", {"title": "mine"}, format="json"),
        b.get(f"/api/v1/requests/{world.a_request.number}/"),
        b.post("/api/v1/datasets/", {"experiment": world.a.slug, "name": "x"}, format="json"),
        b.post(f"/api/v1/jobs/{world.a_job.pk}/cancel-retry/", {}, format="json"),
        b.get(f"/api/v1/campaigns/{world.a_campaign.pk}/plan/"),
        b.get(f"/api/v1/campaigns/{world.a_campaign.pk}/progress/"),
    ]
    for response in attempts:
        assert response.status_code == 404, response.content
        assert not leaks(response.content)
    # A sample line naming A's template by id reads as an unknown template.
    own = b.post(
        "/api/v1/requests/",
        {
            "experiment": world.b.slug,
            "physics_group": "bravo-group",
            "ticket": "BRAVO0000009",
            "title": "Borrowing",
            "deadline": DEADLINE,
            "samples": [
                {
                    "name": "borrow",
                    "template": world.a_template.pk,
                    "events": 10,
                    "events_per_job": 1,
                    "output_dataset": "bravo:borrow-out",
                }
            ],
        },
        format="json",
    )
    assert own.status_code == 400
    assert "template" in own.json()["samples"][0]
    assert not leaks(own.content)


def test_b_cannot_take_a_over_through_the_form(world):
    """Filing in the browser for A's experiment is refused, and nothing is stored."""
    from requests_app.models import ProductionRequest

    before = ProductionRequest.objects.count()
    response = page_as(world, "liaison_b").post(
        "/requests/new/",
        {
            "experiment": world.a.slug,
            "ticket": "BRAVO0000010",
            "title": "into A",
            "deadline": DEADLINE,
            "physics_group": "secret-a-group",
        },
    )
    assert response.status_code in (200, 400, 403, 404)
    assert ProductionRequest.objects.count() == before
    assert not leaks(response.content, {"e": world.a.slug, "g": "secret-a-group"})

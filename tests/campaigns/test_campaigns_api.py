"""The campaign API contract: shapes, status codes, visibility and bounded queries."""

import datetime as dt

import pytest
from django.urls import include, path
from django.utils import timezone
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from rest_framework.routers import DefaultRouter

from campaigns.api import register
from campaigns.choices import CampaignState, WaitReason
from campaigns.models import Campaign
from campaigns.services import schedule_requests
from requests_app.choices import RequestState
from tests.campaigns.factories import CampaignFactory, approved_request, workflow

pytestmark = pytest.mark.django_db

BASE = "/api/v1/campaigns/"


def in_days(n):
    return (timezone.localdate() + dt.timedelta(days=n)).isoformat()


@pytest.fixture
def campaign(experiment, operator):
    campaign = CampaignFactory(experiment=experiment, name="MCC5.0", created_by=operator)
    request = approved_request(experiment, events=1000, per_job=100)
    schedule_requests(campaign, [request.pk], operator)
    return campaign


def test_list_is_scoped_and_carries_counts(api, campaign, operator, liaison, other_liaison):
    other = other_liaison.memberships.get().experiment
    CampaignFactory(experiment=other, name="SBND round")

    body = api(operator).get(BASE).json()
    assert {c["name"] for c in body["results"]} == {"MCC5.0", "SBND round"}

    body = api(liaison).get(BASE).json()
    (item,) = body["results"]
    assert item["name"] == "MCC5.0" and item["experiment"] == "dune"
    assert item["state"] == "planned" and item["created_by"] == "op"
    assert item["jobs"]["total"] == 25 and item["jobs"]["ready"] == 10
    assert item["jobs"]["planned"] == 15
    assert [r["state"] for r in item["requests"]] == ["scheduled"]

    assert [c["name"] for c in api(other_liaison).get(BASE).json()["results"]] == ["SBND round"]
    assert api().get(BASE).status_code == 401


def test_filters(api, campaign, operator, experiment):
    CampaignFactory(experiment=experiment, name="Later", state=CampaignState.CANCELLED)
    client = api(operator)
    names = lambda q: [c["name"] for c in client.get(BASE + q).json()["results"]]  # noqa: E731
    assert names("?state=planned") == ["MCC5.0"]
    assert sorted(names("?state=planned,cancelled")) == ["Later", "MCC5.0"]
    assert names("?experiment=sbnd") == []
    assert names("?search=MCC") == ["MCC5.0"]
    assert client.get(BASE + "?state=bogus").status_code == 400


def test_list_queries_are_bounded(api, operator, experiment, django_assert_max_num_queries):
    template = workflow(experiment)
    for _ in range(8):
        c = CampaignFactory(experiment=experiment)
        schedule_requests(c, [approved_request(experiment, template).pk], operator)
    client = api(operator)
    client.get(BASE)
    with django_assert_max_num_queries(6):
        assert len(client.get(BASE).json()["results"]) == 8


def test_create(api, operator, experiment, liaison):
    payload = {"experiment": "dune", "name": "MCC6", "deadline": in_days(30), "priority": "high"}
    response = api(operator).post(BASE, payload, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["state"], body["backend"]) == ("MCC6", "planned", "local")

    response = api(liaison).post(BASE, {**payload, "name": "Mine"}, format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == "Only OPOS operators may create campaigns."

    response = api(operator).post(BASE, {"experiment": "dune"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"name", "deadline"}

    response = api(operator).post(BASE, {**payload, "deadline": in_days(-1)}, format="json")
    assert response.status_code == 400
    assert response.json()["reasons"] == [f"deadline: {in_days(-1)} is in the past"]
    response = api(operator).post(BASE, payload, format="json")
    assert response.status_code == 400
    assert response.json()["reasons"] == ["name: dune already has a campaign named 'MCC6'"]


def test_retrieve_and_patch(api, campaign, operator, liaison, other_liaison):
    url = f"{BASE}{campaign.pk}/"
    assert api(liaison).get(url).status_code == 200
    assert api(other_liaison).get(url).status_code == 404

    response = api(operator).patch(url, {"priority": "critical"}, format="json")
    assert response.status_code == 400
    assert response.json()["reasons"] == ["reason: required to change the priority or the deadline"]
    response = api(operator).patch(
        url, {"priority": "critical", "throttle": 10, "reason": "supernova alert"}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["priority"], response.json()["throttle"]) == ("critical", 10)

    assert api(liaison).patch(url, {"throttle": 3}, format="json").status_code == 403
    assert api(other_liaison).patch(url, {"throttle": 3}, format="json").status_code == 404
    assert api(operator).put(url, {"throttle": 3}, format="json").status_code == 405


def test_schedule(api, campaign, operator, liaison, other_liaison, experiment):
    url = f"{BASE}{campaign.pk}/schedule/"
    request = approved_request(experiment, events=500, per_job=100)
    response = api(operator).post(url, {"requests": [request.pk], "note": "MCC"}, format="json")
    assert response.status_code == 200
    assert response.json() == {
        "campaign": campaign.pk,
        "scheduled": [request.number],
        "stages": 3,
        "jobs": 5 + 5 + 3,
    }

    draft = approved_request(experiment, state=RequestState.DRAFT)
    response = api(operator).post(url, {"requests": [draft.pk]}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["detail"] == "The requests cannot be scheduled; nothing was planned."
    assert body["reasons"] == [
        f"requests: {draft.number} is draft; only approved requests can be scheduled"
    ]

    fresh = approved_request(experiment)
    assert api(liaison).post(url, {"requests": [fresh.pk]}, format="json").status_code == 403
    assert api(other_liaison).post(url, {"requests": [fresh.pk]}, format="json").status_code == 404
    response = api(operator).post(url, {"requests": []}, format="json")
    assert response.status_code == 400 and "requests" in response.json()
    response = api(operator).post(url, {"requests": [999999]}, format="json")
    assert response.status_code == 400
    assert response.json()["reasons"] == ["requests: no request with id 999999"]


def test_actions(api, campaign, operator, liaison):
    url = f"{BASE}{campaign.pk}/actions/"
    response = api(operator).post(url, {"action": "launch", "note": "go"}, format="json")
    assert response.status_code == 200 and response.json()["state"] == "active"

    response = api(operator).post(url, {"action": "launch"}, format="json")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "Cannot launch: the campaign is active.",
        "reasons": ["launch needs the state: planned"],
    }
    assert api(liaison).post(url, {"action": "pause"}, format="json").status_code == 403
    response = api(operator).post(url, {"action": "complete"}, format="json")
    assert response.status_code == 400 and "action" in response.json()

    response = api(operator).post(url, {"action": "cancel", "note": " "}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "A reason is required to cancel a campaign.",
        "reasons": ["note: say why the campaign is cancelled; it is recorded"],
    }
    assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.ACTIVE
    response = api(operator).post(url, {"action": "cancel", "note": "stop"}, format="json")
    assert response.status_code == 200
    assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.CANCELLED


def test_remove_a_request(api, campaign, operator, liaison):
    url = f"{BASE}{campaign.pk}/remove/"
    request = campaign.links.get().request
    assert api(liaison).post(url, {"request": request.pk}, format="json").status_code == 403
    response = api(operator).post(url, {"request": request.pk, "reason": "MCC6"}, format="json")
    assert response.status_code == 200 and response.json()["requests"] == []
    assert response.json()["jobs"]["total"] == 0
    response = api(operator).post(url, {"request": request.pk, "reason": "again"}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == "The request is not in this campaign."


def test_plan(api, campaign, operator, liaison, other_liaison, django_assert_max_num_queries):
    url = f"{BASE}{campaign.pk}/plan/"
    client = api(liaison)
    client.get(url)
    with django_assert_max_num_queries(12):
        body = client.get(url).json()
    assert body["campaign"] == campaign.pk and body["state"] == "planned"
    assert body["jobs"]["total"] == 25
    assert [s["name"] for s in body["stages"]] == ["generation", "simulation", "reconstruction"]
    gen, sim, reco = body["stages"]
    assert gen["waiting_reason"] == WaitReason.NOT_LAUNCHED
    assert gen["submit_now"] == 0
    assert gen["jobs"]["ready"] == 10 and sim["jobs"]["planned"] == 10
    assert reco["walltime_estimate_s"] == 900
    assert body["forecast"]["status"] == "on_track"
    assert body["forecast"]["message"].startswith("If launched now")
    (request,) = body["requests"]
    assert request["forecast"]["remaining_jobs"] == 25

    api(operator).post(f"{BASE}{campaign.pk}/actions/", {"action": "launch"}, format="json")
    body = client.get(url).json()
    gen, sim, reco = body["stages"]
    assert gen["submit_now"] == 4  # the local backend's capacity
    assert sim["waiting_reason"] == WaitReason.DEPENDENCY
    assert body["rank"] == 0
    assert api(other_liaison).get(url).status_code == 404


def test_templates(api, experiment, liaison, other_liaison):
    own = workflow(experiment, name="dune-chain")
    shared = workflow(experiment, name="shared-chain")
    shared.experiment = None
    shared.save()
    body = api(liaison).get("/api/v1/templates/").json()
    assert {t["name"] for t in body["results"]} == {"dune-chain", "shared-chain"}
    body = api(other_liaison).get("/api/v1/templates/").json()
    assert [t["name"] for t in body["results"]] == ["shared-chain"]
    body = api(liaison).get("/api/v1/templates/?shared=true").json()
    assert [t["name"] for t in body["results"]] == ["shared-chain"]
    detail = api(liaison).get(f"/api/v1/templates/{own.pk}/").json()
    assert [s["name"] for s in detail["stages"]] == ["generation", "simulation", "reconstruction"]
    assert detail["stages"][1]["input_stage"] == "generation"
    assert detail["stages"][0]["code"]["sha256"]


def test_our_endpoints_document_themselves_without_warnings():
    # Only this app's endpoints: the names of choice sets shared with other apps
    # (campaign and request "state", "backend") are the project settings' business
    # (ENUM_NAME_OVERRIDES), reported to the lead.
    router = DefaultRouter()
    register(router)
    GENERATOR_STATS.reset()
    schema = SchemaGenerator(patterns=[path("api/v1/", include(router.urls))]).get_schema(
        request=None, public=True
    )
    validate_schema(schema)
    assert not GENERATOR_STATS, "drf-spectacular warned about the campaign endpoints"
    assert {
        "/api/v1/campaigns/",
        "/api/v1/campaigns/{id}/",
        "/api/v1/campaigns/{id}/schedule/",
        "/api/v1/campaigns/{id}/actions/",
        "/api/v1/campaigns/{id}/plan/",
        "/api/v1/templates/",
    } <= set(schema["paths"])

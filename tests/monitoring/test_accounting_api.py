"""``/api/v1/accounting/`` and ``/api/v1/accounting/allocations/``: the ledger per visibility,
allocations set by operators only (validated, audited), and both in the OpenAPI schema."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from django.core.management import call_command
from django.utils import timezone

from experiments.models import AuditEvent
from monitoring.models import Allocation

from .accounting_builders import allocation, failed, succeeded
from .builders import planned_campaign

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_experiments(experiment, other_experiment, operator):
    today = timezone.localdate()
    for exp, hours in ((experiment, 3), (other_experiment, 7)):
        campaign = planned_campaign(exp, operator, events=1000, per_job=100, name=f"{exp.slug}-c")
        succeeded(campaign, hours, core_s=3600, cpu_s=1800)
        failed(campaign, 1, core_s=1800, cpu_s=100)
        allocation(exp, 100, today.replace(day=1), today.replace(day=1) + dt.timedelta(days=60))
    return experiment, other_experiment


def test_ledger_for_an_operator_has_every_experiment(api, operator, two_experiments):
    response = api(operator).get("/api/v1/accounting/")
    assert response.status_code == 200, response.content
    data = response.json()
    today = timezone.localdate()
    assert (data["start"], data["end"]) == (today.replace(day=1).isoformat(), today.isoformat())
    rows = {row["label"]: row for row in data["experiments"]}
    assert set(rows) == {"dune", "sbnd"}
    assert rows["dune"]["succeeded_core_hours"] == pytest.approx(3)
    assert rows["dune"]["wasted_core_hours"] == pytest.approx(0.5)
    assert rows["dune"]["efficiency"] == pytest.approx((1.5 + 100 / 3600) / 3.5)
    assert data["total"]["core_hours"] == pytest.approx(3.5 + 7.5)
    assert {a["experiment"] for a in data["allocations"]} == {"dune", "sbnd"}
    assert {row["experiment"] for row in data["campaigns"]} == {"dune", "sbnd"}
    status = next(a for a in data["allocations"] if a["experiment"] == "dune")
    assert status["used_core_hours"] == pytest.approx(3.5)
    assert status["cpu_hours"] == 100
    assert status["status"] in {"ok", "at_risk"}


def test_members_see_their_experiment_only(api, liaison, two_experiments):
    data = api(liaison).get("/api/v1/accounting/").json()
    assert [row["label"] for row in data["experiments"]] == ["dune"]
    assert {row["experiment"] for row in data["requests"]} == {"dune"}
    assert [a["experiment"] for a in data["allocations"]] == ["dune"]
    assert data["total"]["core_hours"] == pytest.approx(3.5)
    assert api(liaison).get("/api/v1/accounting/?experiment=sbnd").status_code == 404
    listed = api(liaison).get("/api/v1/accounting/allocations/").json()["results"]
    assert [a["experiment"] for a in listed] == ["dune"]


def test_ledger_period_and_experiment_filters(api, operator, two_experiments):
    client = api(operator)
    data = client.get("/api/v1/accounting/?experiment=sbnd").json()
    assert [row["label"] for row in data["experiments"]] == ["sbnd"]
    last_year = client.get("/api/v1/accounting/?start=2020-01-01&end=2020-12-31").json()
    assert last_year["experiments"] == [] and last_year["total"]["core_hours"] == 0
    bad = client.get("/api/v1/accounting/?start=yesterday")
    assert bad.status_code == 400 and "start" in bad.content.decode()
    backwards = client.get("/api/v1/accounting/?start=2026-02-01&end=2026-01-01")
    assert backwards.status_code == 400 and "end" in backwards.content.decode()
    assert api().get("/api/v1/accounting/").status_code in (401, 403)


def test_operators_set_allocations_audited(api, operator, experiment):
    client = api(operator)
    body = {"experiment": "dune", "start": "2027-01-01", "end": "2027-06-30", "cpu_hours": 5000}
    response = client.post("/api/v1/accounting/allocations/", body, format="json")
    assert response.status_code == 201, response.content
    made = Allocation.objects.get(pk=response.json()["id"])
    assert (made.cpu_hours, made.created_by) == (5000, operator)
    event = AuditEvent.objects.get(action="set_allocation")
    assert event.actor == operator and event.experiment == experiment
    assert event.data["after"]["cpu_hours"] == 5000

    overlap = {**body, "start": "2027-06-01", "end": "2027-12-31"}
    refused = client.post("/api/v1/accounting/allocations/", overlap, format="json")
    assert refused.status_code == 400 and "overlaps" in refused.content.decode()
    assert Allocation.objects.count() == 1

    changed = client.patch(
        f"/api/v1/accounting/allocations/{made.pk}/", {"cpu_hours": 6000}, format="json"
    )
    assert changed.status_code == 200, changed.content
    event = AuditEvent.objects.get(action="change_allocation")
    assert (event.data["before"]["cpu_hours"], event.data["after"]["cpu_hours"]) == (5000, 6000)

    assert client.delete(f"/api/v1/accounting/allocations/{made.pk}/").status_code == 204
    assert not Allocation.objects.exists()
    assert AuditEvent.objects.filter(action="delete_allocation").count() == 1


def test_members_may_not_set_allocations(api, liaison, experiment):
    body = {"experiment": "dune", "start": "2027-01-01", "end": "2027-06-30", "cpu_hours": 1}
    response = api(liaison).post("/api/v1/accounting/allocations/", body, format="json")
    assert response.status_code == 403
    assert not Allocation.objects.exists()


def test_ledger_api_queries_are_bounded(
    api, operator, two_experiments, django_assert_max_num_queries
):
    client = api(operator)
    client.get("/api/v1/accounting/")  # the token and roles are looked up the first time too
    with django_assert_max_num_queries(12):
        assert client.get("/api/v1/accounting/").status_code == 200


def test_accounting_is_in_the_openapi_schema(tmp_path):
    path = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    paths = yaml.safe_load(path.read_text())["paths"]
    assert "get" in paths["/api/v1/accounting/"]
    assert {"get", "post"} <= set(paths["/api/v1/accounting/allocations/"])
    assert {"get", "patch", "put", "delete"} <= set(paths["/api/v1/accounting/allocations/{id}/"])

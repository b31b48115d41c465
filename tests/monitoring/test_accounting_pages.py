"""The accounting page, its CSV, the allocation form, the allocations on the dashboards and
in the status report, and the accounting families of /metrics."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse
from django.utils import timezone

from experiments.models import AuditEvent
from monitoring.models import Allocation

from .accounting_builders import allocation, failed, succeeded
from .builders import planned_campaign
from .test_metrics import parse

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(experiment, other_experiment, operator):
    today = timezone.localdate()
    for exp, hours in ((experiment, 3), (other_experiment, 7)):
        campaign = planned_campaign(exp, operator, events=1000, per_job=100, name=f"{exp.slug}-c")
        succeeded(campaign, hours, core_s=3600, cpu_s=1800, max_rss_kb=1_500_000)
        failed(campaign, 1, core_s=1800, cpu_s=100)
        allocation(exp, 10, today - dt.timedelta(days=2), today + dt.timedelta(days=27))
    return experiment, other_experiment


def test_operator_sees_every_experiment_and_the_allocations(client, operator, world):
    client.force_login(operator)
    page = client.get(reverse("monitoring:accounting")).content.decode()
    assert "DUNE" in page and "SBND" in page
    assert "CPU allocations" in page and "Set an allocation" in page
    assert "dune-c" in page and "sbnd-c" in page
    assert "1.4 GiB" in page  # peak memory


def test_member_sees_only_their_experiment(client, liaison, world):
    client.force_login(liaison)
    page = client.get(reverse("monitoring:accounting")).content.decode()
    assert "dune-c" in page and "sbnd-c" not in page and "SBND" not in page
    assert "Set an allocation" not in page
    url = reverse("monitoring:accounting") + "?experiment=sbnd"
    assert client.get(url).status_code == 404
    rows = list(
        csv.DictReader(
            io.StringIO(client.get(reverse("monitoring:accounting_csv")).content.decode())
        )
    )
    assert {row["experiment"] for row in rows} == {"dune"}


def test_csv_has_the_ledger_and_the_allocations(client, operator, world):
    client.force_login(operator)
    response = client.get(reverse("monitoring:accounting_csv") + "?experiment=dune")
    assert response["Content-Type"].startswith("text/csv")
    assert "accounting-dune-" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_level = {(row["level"], row["label"]): row for row in rows}
    experiment = by_level[("experiment", "dune")]
    assert float(experiment["core_hours"]) == pytest.approx(3.5)
    assert float(experiment["wasted_core_hours"]) == pytest.approx(0.5)
    assert int(experiment["max_rss_kb"]) == 1_500_000
    alloc = by_level[("allocation", "dune")]
    assert (alloc["allocated_core_hours"], alloc["used_percent"]) == ("10", "35.0")
    assert {row["level"] for row in rows} == {
        "allocation",
        "experiment",
        "group",
        "campaign",
        "request",
    }


def test_bad_period_is_shown_on_the_form(client, operator, world):
    client.force_login(operator)
    url = reverse("monitoring:accounting") + "?start=2026-05-01&end=2026-04-01"
    page = client.get(url).content.decode()
    assert "must end on or after its first day" in page


def test_operator_sets_changes_and_removes_an_allocation(client, operator, experiment):
    client.force_login(operator)
    url = reverse("monitoring:allocation_new")
    body = {
        "experiment": experiment.pk,
        "start": "2027-01-01",
        "end": "2027-03-31",
        "cpu_hours": "1200",
        "note": "Q1 grant",
    }
    response = client.post(url, body)
    assert response.status_code == 302
    made = Allocation.objects.get()
    assert (made.cpu_hours, made.note, made.created_by) == (1200, "Q1 grant", operator)
    assert AuditEvent.objects.filter(action="set_allocation", experiment=experiment).exists()

    clash = client.post(url, {**body, "start": "2027-03-01", "end": "2027-06-30"})
    assert clash.status_code == 200 and "overlaps" in clash.content.decode()
    backwards = client.post(url, {**body, "start": "2028-03-01", "end": "2028-01-01"})
    assert "must end on or after" in backwards.content.decode()
    assert Allocation.objects.count() == 1

    edit = reverse("monitoring:allocation_edit", args=[made.pk])
    assert client.post(edit, {**body, "cpu_hours": "1500"}).status_code == 302
    made.refresh_from_db()
    assert made.cpu_hours == 1500
    assert AuditEvent.objects.filter(action="change_allocation").count() == 1
    assert client.post(edit, {"delete": "1"}).status_code == 302
    assert not Allocation.objects.exists()
    assert AuditEvent.objects.filter(action="delete_allocation").count() == 1


def test_members_may_not_use_the_allocation_form(client, liaison, experiment):
    client.force_login(liaison)
    assert client.get(reverse("monitoring:allocation_new")).status_code == 403
    body = {"experiment": experiment.pk, "start": "2027-01-01", "end": "2027-03-31", "cpu_hours": 1}
    assert client.post(reverse("monitoring:allocation_new"), body).status_code == 403
    assert not Allocation.objects.exists()


def test_dashboards_and_report_show_the_allocations(client, operator, liaison, world):
    client.force_login(operator)
    operations = client.get(reverse("monitoring:operations")).content.decode()
    assert "CPU allocations" in operations and "SBND" in operations
    client.force_login(liaison)
    page = client.get(reverse("monitoring:experiment", args=["dune"])).content.decode()
    assert "CPU allocations" in page and "3.5 h (35%)" in page and "SBND" not in page
    report = client.get(reverse("monitoring:report", args=["dune"])).content.decode()
    assert "CPU hours in this period" in report
    assert "3.5 of 10 core hours used (35%)" in report


def test_metrics_report_core_hours_and_allocations(client, operator, world):
    client.force_login(operator)
    families = parse(client.get("/metrics").content.decode())
    used = {
        (labels["experiment"], labels["outcome"]): value
        for _name, labels, value in families["opos_accounting_core_hours"]
    }
    assert used[("dune", "succeeded")] == pytest.approx(3)
    assert used[("dune", "wasted")] == pytest.approx(0.5)
    assert used[("sbnd", "total")] == pytest.approx(7.5)
    granted = {labels["experiment"]: v for _n, labels, v in families["opos_allocation_core_hours"]}
    assert granted == {"dune": 10, "sbnd": 10}
    spent = {
        labels["experiment"]: v for _n, labels, v in families["opos_allocation_used_core_hours"]
    }
    assert spent["sbnd"] == pytest.approx(7.5)
    assert {
        labels["experiment"] for _n, labels, _v in families["opos_allocation_projected_core_hours"]
    } == {
        "dune",
        "sbnd",
    }

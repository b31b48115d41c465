"""The progress CSV: one row per campaign, request, sample and stage."""

import csv
import io

import pytest
from django.urls import reverse

from monitoring.services.reports import CSV_HEADER
from requests_app.models import ProductionRequest

from .builders import launch, planned_campaign, set_progress

pytestmark = pytest.mark.django_db


def rows(response):
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_csv_of_an_experiment(client, experiment, operator, physicist):
    campaign = launch(planned_campaign(experiment, operator, requests=2, samples=2), operator)
    set_progress(campaign, 0.5)
    client.force_login(physicist)
    response = client.get(reverse("monitoring:csv", args=[experiment.slug]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'attachment; filename="dune-progress-' in response["Content-Disposition"]
    header = response.content.decode().splitlines()[0].split(",")
    assert header == CSV_HEADER
    data = rows(response)
    levels = [r["level"] for r in data]
    assert levels.count("campaign") == 1
    assert levels.count("request") == 2
    assert levels.count("sample") == 4
    assert levels.count("stage") == 12
    top = next(r for r in data if r["level"] == "campaign")
    assert (top["events_done"], top["events_target"], top["percent"]) == ("2000", "4000", "50.0")
    assert top["campaign"] == campaign.name and top["experiment"] == "dune"
    assert top["status"] and top["deadline"]
    stage = next(r for r in data if r["level"] == "stage")
    assert stage["sample"] and stage["stage"] == "generation" and stage["succeeded"] == "5"


def test_cells_cannot_become_spreadsheet_formulas(client, experiment, operator):
    campaign = planned_campaign(experiment, operator)
    request = campaign.links.first().request
    ProductionRequest.objects.filter(pk=request.pk).update(title="=HYPERLINK(1)")
    campaign.name = "=cmd|' /C calc'!A0"
    campaign.save(update_fields=["name"])
    client.force_login(operator)
    body = client.get(reverse("monitoring:csv", args=[experiment.slug])).content.decode()
    assert ",=cmd" not in body
    assert "'=cmd" in body

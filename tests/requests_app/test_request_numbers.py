"""Request numbers per experiment (``DUNE-2026-0042``); older ``REQ-`` numbers still resolve."""

import importlib

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from requests_app.models import ProductionRequest, RequestCounter
from requests_app.services import create_request, next_request_number
from tests.factories import ExperimentFactory
from tests.requests_app.builders import make_request, qualify, request_fields

MIGRATION = importlib.import_module("requests_app.migrations.0005_request_numbers_per_experiment")


def test_each_experiment_counts_its_own(experiment, liaison, other_experiment, other_liaison):
    qualify(experiment, liaison)
    qualify(other_experiment, other_liaison)
    year = timezone.now().year
    dune = [create_request(liaison, experiment, request_fields(), []).number for _ in range(3)]
    sbnd = create_request(other_liaison, other_experiment, request_fields(), []).number
    assert dune == [f"DUNE-{year}-0001", f"DUNE-{year}-0002", f"DUNE-{year}-0003"]
    # SBND's first number does not jump by DUNE's volume.
    assert sbnd == f"SBND-{year}-0001"


@pytest.fixture
def legacy(experiment, liaison):
    qualify(experiment, liaison)
    request = make_request(experiment, liaison)
    ProductionRequest.objects.filter(pk=request.pk).update(number="REQ-2025-0042")
    return ProductionRequest.objects.get(pk=request.pk)


def test_an_older_number_resolves_in_pages_and_api(client, api, liaison, operator, legacy):
    client.force_login(liaison)
    assert client.get("/requests/REQ-2025-0042/").status_code == 200
    assert client.get("/monitoring/requests/REQ-2025-0042/").status_code == 200
    body = api(liaison).get("/api/v1/requests/REQ-2025-0042/")
    assert (body.status_code, body.json()["id"]) == (200, legacy.pk)
    progress = api(liaison).get("/api/v1/requests/REQ-2025-0042/progress/")
    assert progress.status_code == 200
    found = api(liaison).get("/api/v1/requests/", {"search": "REQ-2025-0042"}).json()
    assert [r["number"] for r in found["results"]] == ["REQ-2025-0042"]


def test_a_new_number_resolves_too(api, client, liaison, experiment):
    qualify(experiment, liaison)
    request = create_request(liaison, experiment, request_fields(), [])
    assert request.number.startswith("DUNE-")
    client.force_login(liaison)
    assert client.get(f"/requests/{request.number}/").status_code == 200
    assert api(liaison).get(f"/api/v1/requests/{request.number}/").json()["id"] == request.pk
    assert api(liaison).get(f"/api/v1/requests/{request.number}/progress/").status_code == 200


def test_the_migration_starts_counters_after_numbers_already_taken(db):
    # An experiment whose slug makes its new numbers look like the old global ones.
    req = ExperimentFactory(slug="req", name="REQ")
    dune = ExperimentFactory(slug="dune", name="DUNE")
    for number, experiment in [
        ("REQ-2026-0007", dune),
        ("REQ-2026-0012", req),
        ("REQ-2025-0099", dune),
        ("DUNE-2026-0003", dune),
    ]:
        from tests.factories import ProductionRequestFactory

        ProductionRequestFactory(experiment=experiment, number=number)
    RequestCounter.objects.all().delete()
    # The models as the migration knows them (Experiment was then intake's).
    state = MigrationLoader(connection).project_state(
        ("requests_app", "0005_request_numbers_per_experiment")
    )
    MIGRATION.start_after_taken_numbers(state.apps, None)
    assert next_request_number(req, 2026) == "REQ-2026-0013"
    assert next_request_number(req, 2025) == "REQ-2025-0100"
    assert next_request_number(dune, 2026) == "DUNE-2026-0004"
    assert next_request_number(dune, 2027) == "DUNE-2027-0001"


@pytest.mark.django_db(transaction=True)
def test_migrating_keeps_existing_numbers_and_counts_after_them():
    from django.db.migrations.executor import MigrationExecutor

    before = [("requests_app", "0004_blocked_work")]
    after = [("requests_app", "0005_request_numbers_per_experiment")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    user = old.get_model("auth", "User").objects.create(username="liam")
    made = {}
    for slug in ("dune", "req"):
        experiment = old.get_model("requests_app", "Experiment").objects.create(
            slug=slug, name=slug
        )
        group = old.get_model("requests_app", "PhysicsGroup").objects.create(
            experiment=experiment, slug="g", name="G"
        )
        made[slug] = (experiment, group)
    Request = old.get_model("requests_app", "ProductionRequest")
    for number, slug in [("REQ-2026-0001", "dune"), ("REQ-2026-0002", "req")]:
        experiment, group = made[slug]
        Request.objects.create(
            number=number,
            ticket="RITM0000001",
            experiment=experiment,
            physics_group=group,
            requester=user,
            title="t",
            deadline="2099-01-01",
        )
    old.get_model("requests_app", "RequestCounter").objects.create(year=2026, last=2)

    executor = MigrationExecutor(connection)
    executor.migrate(after)
    # Then on to the latest state, which the models below (and the tests after this one,
    # sharing the database) expect.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert sorted(ProductionRequest.objects.values_list("number", flat=True)) == [
        "REQ-2026-0001",
        "REQ-2026-0002",
    ]
    from experiments.models import Experiment

    dune, req = Experiment.objects.get(slug="dune"), Experiment.objects.get(slug="req")
    assert next_request_number(dune, 2026) == "DUNE-2026-0001"
    assert next_request_number(req, 2026) == "REQ-2026-0003"  # after the global ones taken

"""``/api/v1/code/`` and ``/api/v1/training/``: the SLA records over the API, with the same
checks and audit as the browser forms, refused for everyone but operators."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from experiments.models import AuditEvent, ProductionCode, TrainingRecord
from tests.factories import ProductionCodeFactory

pytestmark = pytest.mark.django_db

SHA = "a" * 64


def _code(experiment, liaison, **overrides) -> dict:
    return {
        "experiment": overrides.pop("slug", experiment.slug),
        "name": "genie_gen.sh",
        "version": "1.2",
        "kind": "script",
        "location": "/cvmfs/dune/genie_gen.sh",
        "sha256": SHA,
        "owners": [liaison.username],
        "approve": True,
        **overrides,
    }


def test_an_operator_registers_and_approves_code_with_its_audit(api, operator, liaison, experiment):
    answer = api(operator).post("/api/v1/code/", _code(experiment, liaison), format="json")

    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert (body["experiment"], body["name"], body["version"]) == ("dune", "genie_gen.sh", "1.2")
    assert body["owners"] == ["liaison"] and body["approved"] and body["approved_by"] == "op"
    event = AuditEvent.objects.get(action="register_code")
    assert event.actor == operator and event.experiment == experiment
    assert event.data == {"sha256": SHA, "owners": ["liaison"], "approved": True}
    listed = api(operator).get("/api/v1/code/").json()
    assert [c["id"] for c in listed["results"]] == [body["id"]]


def test_a_checksum_is_computed_from_an_uploaded_file(api, operator, liaison, experiment):
    content = b"#!/bin/sh\necho generate\n"
    body = _code(experiment, liaison, sha256="", approve=False)
    body["upload"] = SimpleUploadedFile("gen.sh", content)
    answer = api(operator).post("/api/v1/code/", body, format="multipart")

    assert answer.status_code == 201, answer.json()
    assert answer.json()["sha256"] == hashlib.sha256(content).hexdigest()
    assert not answer.json()["approved"]

    # A given checksum must agree with the file: refused by name, nothing stored.
    wrong = _code(experiment, liaison, version="1.3", sha256=SHA)
    wrong["upload"] = SimpleUploadedFile("gen.sh", content)
    refused = api(operator).post("/api/v1/code/", wrong, format="multipart")
    assert refused.status_code == 400
    assert "does not match the uploaded file" in refused.json()["sha256"][0]
    assert ProductionCode.objects.count() == 1


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"sha256": "xyz"}, "sha256", "64"),
        ({"name": ""}, "name", "required"),
        ({"version": "v" * 61}, "version", "at most 60"),
        ({"location": ""}, "location", "required"),
        ({"kind": "binary"}, "kind", "not a valid choice"),
        ({"owners": ["nobody"]}, "owners", "does not exist"),
        ({"slug": "nope"}, "experiment", "does not exist"),
        ({"sha256": ""}, "sha256", "approval needs a checksum"),
    ],
)
def test_bad_code_is_refused_naming_the_field(
    api, operator, liaison, experiment, overrides, field, message
):
    answer = api(operator).post(
        "/api/v1/code/", _code(experiment, liaison, **overrides), format="json"
    )

    assert answer.status_code == 400
    assert message in str(answer.json()[field])
    assert not ProductionCode.objects.exists()
    assert not AuditEvent.objects.filter(action="register_code").exists()


def test_owners_must_be_liaisons_and_versions_unique(
    api, operator, liaison, other_liaison, experiment
):
    strangers = _code(experiment, liaison, owners=[other_liaison.username])
    refused = api(operator).post("/api/v1/code/", strangers, format="json")
    assert refused.status_code == 400
    assert refused.json()["owners"] == ["not liaisons of DUNE: other"]

    first = api(operator).post("/api/v1/code/", _code(experiment, liaison), format="json")
    assert first.status_code == 201
    again = api(operator).post("/api/v1/code/", _code(experiment, liaison), format="json")
    assert again.status_code == 400
    assert "already registered" in again.json()["version"][0]
    assert ProductionCode.objects.count() == 1


def test_approve_registered_code(api, operator, liaison, experiment):
    code = ProductionCodeFactory(experiment=experiment, sha256=SHA, approved=False)
    bare = ProductionCodeFactory(experiment=experiment, sha256="", approved=False)
    code.owners.set([liaison])

    answer = api(operator).post(f"/api/v1/code/{code.pk}/approve/")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["approved"] and answer.json()["approved_by"] == "op"
    assert AuditEvent.objects.filter(action="approve_code").count() == 1
    refused = api(operator).post(f"/api/v1/code/{bare.pk}/approve/")
    assert refused.status_code == 400
    assert "no sha256" in refused.json()["non_field_errors"][0]
    twice = api(operator).post(f"/api/v1/code/{code.pk}/approve/")
    assert twice.status_code == 400 and "already approved" in str(twice.json())
    assert AuditEvent.objects.filter(action="approve_code").count() == 1


def test_only_operators_use_the_records_api(api, liaison, physicist, experiment):
    code = ProductionCodeFactory(experiment=experiment, sha256=SHA)
    for user in (liaison, physicist):
        client = api(user)
        refused = [
            client.get("/api/v1/code/"),
            client.get(f"/api/v1/code/{code.pk}/"),
            client.post("/api/v1/code/", _code(experiment, liaison), format="json"),
            client.post(f"/api/v1/code/{code.pk}/approve/"),
            client.get("/api/v1/training/"),
            client.post("/api/v1/training/", {}, format="json"),
        ]
        assert [r.status_code for r in refused] == [403] * 6
        assert "Only OPOS operators" in refused[0].json()["detail"]
    assert api().get("/api/v1/code/").status_code == 401
    assert ProductionCode.objects.count() == 1 and not TrainingRecord.objects.exists()


def test_an_operator_records_training(api, operator, experiment):
    held_on = timezone.localdate() - dt.timedelta(days=3)
    body = {
        "experiment": "dune",
        "held_on": held_on.isoformat(),
        "topics": ["monitoring", "submission"],
        "attendees": ["op"],
        "notes": "Walkthrough of the MCC chain",
    }
    answer = api(operator).post("/api/v1/training/", body, format="json")

    assert answer.status_code == 201, answer.json()
    assert answer.json()["attendees"] == ["op"] and answer.json()["recorded_by"] == "op"
    assert set(answer.json()["topics"]) == {"monitoring", "submission"}
    event = AuditEvent.objects.get(action="record_training")
    assert event.experiment == experiment and event.data["attendees"] == ["op"]
    assert api(operator).get("/api/v1/training/").json()["count"] == 1


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"topics": []}, "topics", "choose one or more"),
        ({"topics": ["juggling"]}, "topics", "choose one or more"),
        ({"held_on": "2999-01-01"}, "held_on", "in the future"),
        ({"held_on": "yesterday"}, "held_on", "Date has wrong format"),
        ({"attendees": ["liaison"]}, "attendees", "not operators: liaison"),
        ({"experiment": "nope"}, "experiment", "does not exist"),
    ],
)
def test_bad_training_is_refused_naming_the_field(
    api, operator, liaison, experiment, overrides, field, message
):
    body = {
        "experiment": "dune",
        "held_on": timezone.localdate().isoformat(),
        "topics": ["monitoring"],
        **overrides,
    }
    answer = api(operator).post("/api/v1/training/", body, format="json")

    assert answer.status_code == 400
    assert message in str(answer.json()[field])
    assert not TrainingRecord.objects.exists()
    assert not AuditEvent.objects.filter(action="record_training").exists()


def test_code_and_training_lists_are_bounded(
    api, operator, liaison, experiment, django_assert_max_num_queries
):
    for n in range(12):
        code = ProductionCodeFactory(experiment=experiment, version=f"1.{n}")
        code.owners.set([liaison])
        TrainingRecord.objects.create(
            experiment=experiment, held_on=timezone.localdate(), topics=["monitoring"]
        ).attendees.set([operator])
    client = api(operator)
    client.get("/api/v1/code/")  # the token's first use writes its last-use time
    with django_assert_max_num_queries(8):
        assert client.get("/api/v1/code/").json()["count"] == 12
    with django_assert_max_num_queries(8):
        assert client.get("/api/v1/training/").json()["count"] == 12

"""Operators record training sessions and register production code in the browser."""

import datetime as dt
import hashlib

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from experiments.models import AuditEvent, ProductionCode, TrainingRecord
from experiments.services import records
from tests.factories import ProductionCodeFactory

PAGES = [
    reverse("experiments:training_list"),
    reverse("experiments:training_new"),
    reverse("experiments:code_list"),
    reverse("experiments:code_new"),
]


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.mark.parametrize("url", PAGES)
def test_operator_only(client, liaison, physicist, operator, url):
    assert client.get(url).status_code == 302
    for user in (liaison, physicist):
        client.force_login(user)
        assert client.get(url).status_code == 403
        assert client.post(url, {}).status_code == 403
    client.force_login(operator)
    response = client.get(url)
    assert response.status_code == 200
    if "form" in response.context:
        html = response.content.decode()
        assert "csrfmiddlewaretoken" in html
        for bound in response.context["form"]:
            label = (
                f"<legend>{bound.label}" if bound.use_fieldset else f'for="{bound.id_for_label}"'
            )
            assert label in html, bound.name


def test_record_training(client, experiment, operator, admin_user):
    client.force_login(operator)
    response = client.post(
        reverse("experiments:training_new"),
        {
            "experiment": experiment.pk,
            "held_on": "2026-01-10",
            "topics": ["submission", "monitoring"],
            "attendees": [operator.pk, admin_user.pk],
            "notes": "MCC5.0 walk-through",
        },
    )
    assert response.status_code == 302
    record = TrainingRecord.objects.get()
    assert record.topics == ["submission", "monitoring"]
    assert set(record.attendees.all()) == {operator, admin_user}
    assert record.recorded_by == operator
    assert AuditEvent.objects.filter(action="record_training", experiment=experiment).exists()
    page = client.get(reverse("experiments:training_list"))
    assert "MCC5.0 walk-through" in page.content.decode()


def test_training_errors_by_field(client, experiment, operator, liaison):
    client.force_login(operator)
    tomorrow = (timezone.localdate() + dt.timedelta(days=1)).isoformat()
    response = client.post(
        reverse("experiments:training_new"),
        {"experiment": experiment.pk, "held_on": tomorrow, "topics": [], "notes": "kept"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["topics"]
    response = client.post(
        reverse("experiments:training_new"),
        {"experiment": experiment.pk, "held_on": tomorrow, "topics": ["submission"]},
    )
    assert any("in the future" in e for e in response.context["form"].errors["held_on"])
    assert not TrainingRecord.objects.exists()


def test_training_attendees_must_be_operators(experiment, operator, liaison):
    with pytest.raises(records.ValidationError) as exc:
        records.record_training(
            operator, experiment, dt.date(2026, 1, 1), ["submission"], [liaison]
        )
    assert "attendees" in exc.value.message_dict


def code_data(experiment, **overrides):
    data = {
        "experiment": experiment.pk,
        "name": "gen-mcc5",
        "version": "2.1",
        "kind": "script",
        "location": "/cvmfs/dune/gen.py",
        "sha256": "",
        "approve": "",
    }
    data.update(overrides)
    return data


def test_register_code_with_checksum_from_upload(client, experiment, operator, liaison):
    client.force_login(operator)
    content = b"print('generate')\n"
    data = code_data(experiment, owners=[liaison.pk], approve="on")
    data["upload"] = SimpleUploadedFile("gen.py", content)
    response = client.post(reverse("experiments:code_new"), data)
    assert response.status_code == 302, response.context["form"].errors
    code = ProductionCode.objects.get()
    assert code.sha256 == hashlib.sha256(content).hexdigest()
    assert code.approved and code.approved_by == operator
    assert list(code.owners.all()) == [liaison]
    assert AuditEvent.objects.filter(action="register_code").exists()


def test_register_code_errors_by_field(client, experiment, operator, physicist):
    client.force_login(operator)
    response = client.post(
        reverse("experiments:code_new"),
        code_data(experiment, sha256="xyz", owners=[physicist.pk]),
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors["sha256"]
    assert "owners" in errors  # a physicist is not among the liaisons offered
    assert not ProductionCode.objects.exists()


def test_upload_must_match_a_given_checksum_and_stay_small(
    client, experiment, operator, liaison, monkeypatch
):
    client.force_login(operator)
    data = code_data(experiment, sha256="0" * 64, owners=[liaison.pk])
    data["upload"] = SimpleUploadedFile("gen.py", b"abc")
    response = client.post(reverse("experiments:code_new"), data)
    assert any("does not match" in e for e in response.context["form"].errors["sha256"])

    monkeypatch.setattr(records, "MAX_CODE_FILE_BYTES", 2)
    data = code_data(experiment, owners=[liaison.pk])
    data["upload"] = SimpleUploadedFile("gen.py", b"abc")
    response = client.post(reverse("experiments:code_new"), data)
    assert response.context["form"].errors["upload"]
    assert not ProductionCode.objects.exists()


def test_duplicate_version_is_refused(client, experiment, operator):
    ProductionCodeFactory(experiment=experiment, name="gen-mcc5", version="2.1")
    client.force_login(operator)
    response = client.post(reverse("experiments:code_new"), code_data(experiment))
    assert any("already registered" in e for e in response.context["form"].errors["version"])


def test_approve_code(client, experiment, operator, liaison):
    code = ProductionCodeFactory(experiment=experiment, approved=False)
    code.owners.add(liaison)
    unsummed = ProductionCodeFactory(experiment=experiment, approved=False, sha256="")
    unsummed.owners.add(liaison)
    client.force_login(operator)
    page = client.get(reverse("experiments:code_list"))
    assert reverse("experiments:code_approve", args=[code.pk]) in page.content.decode()

    response = client.post(reverse("experiments:code_approve", args=[code.pk]))
    assert response.status_code == 302
    code.refresh_from_db()
    assert code.approved and code.approved_by == operator

    response = client.post(reverse("experiments:code_approve", args=[unsummed.pk]))
    assert any("no sha256 checksum" in m for m in texts(response))
    unsummed.refresh_from_db()
    assert not unsummed.approved


def test_liaison_cannot_approve(client, experiment, liaison):
    code = ProductionCodeFactory(experiment=experiment, approved=False)
    client.force_login(liaison)
    assert client.post(reverse("experiments:code_approve", args=[code.pk])).status_code == 403
    code.refresh_from_db()
    assert not code.approved

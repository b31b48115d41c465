"""The dataset lifecycle in the API (actions, permissions, bad input, OpenAPI) and in the
catalogue pages (reason required, confirmation, POST-redirect-GET, bounded queries)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

from campaigns.execution.catalogue import define_dataset
from campaigns.models import Dataset, OutputFile
from experiments.models import AuditEvent

pytestmark = pytest.mark.django_db

FILES = [
    {"name": f"flux_{i}.root", "size": 100 + i, "checksum": f"{i:064x}", "events": 10}
    for i in range(3)
]


@pytest.fixture
def flux(experiment, liaison):
    return define_dataset(liaison, experiment, "dune:flux-v1", "beam flux", list(FILES))


# --- API ----------------------------------------------------------------------------------------


def test_api_close_reopen_retire_with_reasons(api, flux, liaison, operator):
    url = f"/api/v1/datasets/{flux.pk}"
    closed = api(liaison).post(f"{url}/close/", {"reason": "all files in"}, format="json")
    assert closed.status_code == 200, closed.json()
    assert (closed.json()["state"], closed.json()["state_reason"]) == ("closed", "all files in")
    again = api(liaison).post(f"{url}/close/", {"reason": "twice"}, format="json")
    assert again.status_code == 409
    assert again.json()["reasons"] == ["close needs the state: open"]
    assert api(operator).post(f"{url}/reopen/", {"reason": "x"}, format="json").status_code == 200
    retired = api(liaison).post(f"{url}/retire/", {"reason": "superseded by v2"}, format="json")
    assert retired.json()["state"] == "retired"

    listed = api(liaison).get("/api/v1/datasets/").json()["results"]
    assert flux.name not in [d["name"] for d in listed]  # kept, not listed by default
    asked = api(liaison).get("/api/v1/datasets/", {"state": "retired"}).json()["results"]
    assert [d["name"] for d in asked] == [flux.name]
    assert api(liaison).get(f"{url}/").json()["state"] == "retired"
    actions = AuditEvent.objects.filter(target=flux.name).order_by("id")
    assert [e.action for e in actions] == ["dataset.close", "dataset.reopen", "dataset.retire"]
    assert [e.actor for e in actions] == [liaison, operator, liaison]


def test_api_invalidate_files_and_dataset(api, flux, operator):
    url = f"/api/v1/datasets/{flux.pk}"
    answer = api(operator).post(
        f"{url}/files/invalidate/",
        {"files": ["flux_1.root"], "reason": "bad beam monitor"},
        format="json",
    )
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert (body["files"], body["descendants"]) == (1, 0)
    assert (body["dataset"]["file_count"], body["dataset"]["size_bytes"]) == (2, 202)
    files = {f["name"]: f for f in api(operator).get(f"{url}/files/").json()["results"]}
    assert files["flux_1.root"]["invalid_reason"] == "bad beam monitor"
    assert files["flux_1.root"]["invalidated"] is not None
    assert files["flux_0.root"]["invalidated"] is None

    whole = api(operator).post(f"{url}/invalidate/", {"reason": "wrong run"}, format="json")
    assert whole.status_code == 200
    assert (whole.json()["files"], whole.json()["dataset"]["state"]) == (2, "invalid")
    assert whole.json()["dataset"]["file_count"] == 0
    assert OutputFile.objects.filter(dataset=flux, invalidated__isnull=True).count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "reason"),
        ({"reason": ""}, "reason"),
        ({"reason": "x" * 2001}, "reason"),
        ({"reason": "ok"}, "files"),
        ({"reason": "ok", "files": []}, "files"),
        ({"reason": "ok", "files": "flux_0.root"}, "files"),
        ({"reason": "ok", "files": [7, {"a": 1}]}, "files"),
    ],
)
def test_api_bad_input_names_the_field(api, flux, liaison, body, field):
    answer = api(liaison).post(f"/api/v1/datasets/{flux.pk}/files/invalidate/", body, format="json")
    assert answer.status_code == 400
    assert field in answer.json()
    assert not OutputFile.objects.filter(invalidated__isnull=False).exists()


def test_api_unknown_or_invalid_file_changes_nothing(api, flux, liaison):
    url = f"/api/v1/datasets/{flux.pk}/files/invalidate/"
    body = {"files": ["flux_0.root", "nope.root"], "reason": "r"}
    answer = api(liaison).post(url, body, format="json")
    assert answer.status_code == 400
    assert answer.json()["reasons"] == ["files: nope.root is not a file of dune:flux-v1"]
    assert Dataset.objects.get(pk=flux.pk).file_count == 3
    api(liaison).post(url, {"files": ["flux_0.root"], "reason": "r"}, format="json")
    twice = api(liaison).post(url, {"files": ["flux_0.root"], "reason": "r"}, format="json")
    assert twice.json()["reasons"] == ["files: flux_0.root is already invalid"]
    assert Dataset.objects.get(pk=flux.pk).file_count == 2


def test_api_permissions(api, flux, physicist, other_liaison, liaison):
    url = f"/api/v1/datasets/{flux.pk}"
    body = {"reason": "r"}
    assert api(physicist).post(f"{url}/close/", body, format="json").status_code == 403
    assert api(other_liaison).post(f"{url}/close/", body, format="json").status_code == 404
    assert api(liaison).post(f"{url}/remake/", body, format="json").status_code == 403
    assert Dataset.objects.get(pk=flux.pk).state == "open"
    assert not AuditEvent.objects.filter(action__startswith="dataset.").exists()


def test_api_remake_of_a_dataset_defined_by_hand_is_refused(api, flux, operator):
    url = f"/api/v1/datasets/{flux.pk}"
    api(operator).post(f"{url}/invalidate/", {"reason": "r"}, format="json")
    answer = api(operator).post(f"{url}/remake/", {"reason": "again"}, format="json")
    assert answer.status_code == 409
    assert "defined by hand" in answer.json()["detail"]


def test_lifecycle_actions_are_in_the_openapi_schema(tmp_path):
    path = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--file", str(path))
    text = path.read_text()
    for action in ("close", "reopen", "retire", "invalidate", "remake", "files/invalidate"):
        assert f"/api/v1/datasets/{{id}}/{action}/:" in text, action
    assert "from_invalid_input" in text and "state_reason" in text


# --- pages --------------------------------------------------------------------------------------


def test_navigation_links_the_catalogue(client, physicist):
    client.force_login(physicist)
    page = client.get(reverse("requests:home")).content.decode()
    assert f'href="{reverse("campaigns:dataset_list")}"' in page


def test_detail_page_shows_actions_to_liaisons_only(
    client, flux, liaison, physicist, django_assert_max_num_queries
):
    OutputFile.objects.filter(dataset=flux, name="flux_2.root").update(from_invalid_input=True)
    url = reverse("campaigns:dataset_detail", args=[flux.pk])
    client.force_login(liaison)
    with django_assert_max_num_queries(10):
        page = client.get(url).content.decode()
    for action in ("close", "retire", "invalidate"):
        assert reverse("campaigns:dataset_move", args=[flux.pk, action]) in page
    assert "remake" not in page  # the operators' (and nothing is invalid yet)
    assert page.count('name="file"') == 3
    assert "made from invalid input" in page
    client.force_login(physicist)
    with django_assert_max_num_queries(10):
        page = client.get(url).content.decode()
    assert 'name="file"' not in page and "dataset_move" not in page
    assert reverse("campaigns:dataset_move", args=[flux.pk, "close"]) not in page


def test_close_asks_for_a_reason_then_redirects(client, flux, liaison):
    client.force_login(liaison)
    url = reverse("campaigns:dataset_move", args=[flux.pk, "close"])
    question = client.get(url).content.decode()
    assert "no more files may be added" in question and 'method="post"' in question
    blank = client.post(url, {"reason": "   "})
    assert blank.status_code == 200
    assert "Nothing was done." in blank.content.decode()
    assert "A reason is required." in blank.content.decode()
    assert Dataset.objects.get(pk=flux.pk).state == "open"

    done = client.post(url, {"reason": "all files in"})
    assert done.status_code == 302
    assert done["Location"] == reverse("campaigns:dataset_detail", args=[flux.pk])
    page = client.get(done["Location"]).content.decode()
    assert "dune:flux-v1 is closed (complete)." in page and "all files in" in page
    refused = client.post(url, {"reason": "again"}, follow=True).content.decode()
    assert "Cannot close dune:flux-v1: it is closed." in refused


def test_invalidate_ticked_files_from_the_page(client, flux, liaison):
    client.force_login(liaison)
    url = reverse("campaigns:dataset_invalidate_files", args=[flux.pk])
    question = client.get(url, {"file": ["flux_0.root", "flux_2.root"]}).content.decode()
    assert question.count('type="hidden" name="file"') == 2
    done = client.post(url, {"file": ["flux_0.root", "flux_2.root"], "reason": "noisy"})
    assert done.status_code == 302
    page = client.get(done["Location"]).content.decode()
    assert "2 files invalidated" in page
    assert page.count("badge bad") == 2 and "noisy" in page
    assert page.count('name="file"') == 1  # only the valid one can still be ticked
    nothing = client.get(url, follow=True).content.decode()
    assert "Tick the files to invalidate first." in nothing


def test_list_hides_retired_unless_asked(client, flux, liaison, django_assert_max_num_queries):
    client.force_login(liaison)
    client.post(
        reverse("campaigns:dataset_move", args=[flux.pk, "retire"]),
        {"reason": "superseded"},
        follow=True,  # the message "... is retired." is shown there, once
    )
    listing = reverse("campaigns:dataset_list")
    with django_assert_max_num_queries(8):
        page = client.get(listing).content.decode()
    assert flux.name not in page
    with django_assert_max_num_queries(8):
        page = client.get(listing, {"retired": "1"}).content.decode()
    assert flux.name in page and "retired" in page


def test_a_name_with_nul_is_refused_not_a_server_error(client, flux, liaison):
    client.force_login(liaison)
    url = reverse("campaigns:dataset_invalidate_files", args=[flux.pk])
    answer = client.post(url, {"file": ["flux_0.root\x00"], "reason": "r"})
    assert answer.status_code == 400  # refused before any view (opos/middleware.py)
    assert not OutputFile.objects.filter(invalidated__isnull=False).exists()


def test_pages_refuse_others(client, flux, physicist, other_liaison, liaison):
    client.force_login(physicist)
    move = reverse("campaigns:dataset_move", args=[flux.pk, "close"])
    assert client.post(move, {"reason": "r"}).status_code == 403
    client.force_login(other_liaison)
    assert client.post(move, {"reason": "r"}).status_code == 404
    client.force_login(liaison)
    remake = reverse("campaigns:dataset_move", args=[flux.pk, "remake"])
    assert client.get(remake).status_code == 403
    assert client.get(reverse("campaigns:dataset_move", args=[flux.pk, "nope"])).status_code == 404
    assert Dataset.objects.get(pk=flux.pk).state == "open"

"""History timeline, comments and the eligibility checklist through the API."""

import pytest
from django.core import mail

from requests_app.choices import RequestState as S
from requests_app.models import Comment
from requests_app.services import add_comment, transition, update_request
from tests.requests_app.builders import make_request, qualify

URL = "/api/v1/requests/"


@pytest.fixture
def template(experiment, liaison):
    return qualify(experiment, liaison)


def test_history_interleaves_transitions_edits_and_comments(
    api, experiment, liaison, operator, physicist, template
):
    req = make_request(experiment, liaison)
    update_request(req, liaison, {"title": "Renamed"})
    transition(req, "submit", liaison)
    add_comment(req, operator, "Which flux?")
    transition(req, "request_info", operator, "Please name the flux file.")

    response = api(physicist).get(f"{URL}{req.number}/history/")
    assert response.status_code == 200
    timeline = response.json()
    assert [(e["kind"], e["action"], e["actor"]) for e in timeline] == [
        ("edit", "edit", "liaison"),
        ("transition", "submit", "liaison"),
        ("comment", None, "op"),
        ("transition", "request_info", "op"),
    ]
    edit, submit, comment, ask = timeline
    assert edit["changes"] == {"title": [req.title, "Renamed"]}
    assert (submit["from_state"], submit["to_state"]) == ("draft", "submitted")
    assert (comment["text"], comment["from_state"], comment["changes"]) == (
        "Which flux?",
        None,
        None,
    )
    assert ask["text"] == "Please name the flux file."
    assert set(ask) == {
        "kind",
        "id",
        "created",
        "actor",
        "text",
        "action",
        "from_state",
        "to_state",
        "changes",
    }


def test_history_of_a_system_transition_has_no_actor(api, experiment, liaison, operator, template):
    from requests_app.services import system_transition

    req = make_request(experiment, liaison, S.APPROVED)
    system_transition(req, "schedule", note="MCC5.0")
    (entry,) = api(operator).get(f"{URL}{req.id}/history/").json()
    assert (entry["actor"], entry["action"], entry["text"]) == (None, "schedule", "MCC5.0")


def test_history_runs_a_bounded_number_of_queries(
    api, experiment, liaison, operator, template, django_assert_max_num_queries
):
    req = make_request(experiment, liaison, S.SUBMITTED)
    client = api(operator)
    for round_ in range(2):
        for i in range(10 * round_ + 1):
            add_comment(req, liaison if i % 2 else operator, f"comment {i}")
        with django_assert_max_num_queries(6):
            assert client.get(f"{URL}{req.id}/history/").status_code == 200


def test_comment(api, experiment, liaison, operator, template, django_capture_on_commit_callbacks):
    req = make_request(experiment, liaison, S.SUBMITTED)
    with django_capture_on_commit_callbacks(execute=True):
        response = api(liaison).post(
            f"{URL}{req.id}/comments/", {"body": "Flux files are in place."}, format="json"
        )
    assert response.status_code == 201
    assert set(response.json()) == {"id", "author", "body", "created"}
    assert (response.json()["author"], response.json()["body"]) == (
        "liaison",
        "Flux files are in place.",
    )
    listed = api(operator).get(f"{URL}{req.id}/comments/").json()
    assert [c["body"] for c in listed] == ["Flux files are in place."]
    assert len(mail.outbox) == 0  # the requester commented; nobody else to tell


@pytest.mark.parametrize("body", ["", "   "])
def test_empty_comment_is_400(api, experiment, liaison, template, body):
    req = make_request(experiment, liaison)
    response = api(liaison).post(f"{URL}{req.id}/comments/", {"body": body}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["body"]
    assert not Comment.objects.exists()


def test_physicist_reads_but_does_not_comment(api, experiment, liaison, physicist, template):
    req = make_request(experiment, liaison)
    client = api(physicist)
    assert client.get(f"{URL}{req.id}/comments/").status_code == 200
    response = client.post(f"{URL}{req.id}/comments/", {"body": "hi"}, format="json")
    assert response.status_code == 403
    assert "liaisons and operators" in response.json()["detail"]
    assert not Comment.objects.exists()


def test_eligibility_checklist(api, experiment, liaison, physicist, template):
    req = make_request(experiment, liaison, S.SUBMITTED)
    body = api(physicist).get(f"{URL}{req.id}/eligibility/").json()
    assert body["eligible"] is True
    assert [c["key"] for c in body["checks"]] == ["sla", "code", "training", "ticket"]
    assert set(body["checks"][0]) == {"key", "label", "ok", "missing", "fixer"}

    experiment.sla_accepted_on = None
    experiment.save()
    body = api(physicist).get(f"{URL}{req.id}/eligibility/").json()
    assert body["eligible"] is False
    sla = body["checks"][0]
    assert (sla["ok"], sla["missing"]) == (
        False,
        ["DUNE has no recorded SLA acceptance (date and document)"],
    )
    assert sla["fixer"] == "an OPOS administrator records the signed SLA"

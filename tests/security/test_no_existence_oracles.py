"""Refusals that never depend on whether the thing named exists.

A member changing a field they may not change gets one answer for an existing and an
unknown target: moving a request to another experiment (existing slug or not), setting the
assignee (existing username or not). An operator setting a non-operator or unknown
username as assignee also gets one answer.
"""

import pytest

from requests_app.choices import RequestState
from tests.factories import ExperimentFactory, UserFactory
from tests.requests_app.builders import make_request, qualify

URL = "/api/v1/requests/"


@pytest.fixture
def draft(experiment, liaison):
    qualify(experiment, liaison)
    return make_request(experiment, liaison)


def _answer(response):
    return response.status_code, response.json()


def test_moving_to_another_experiment_reads_the_same_whether_it_exists(api, liaison, draft):
    ExperimentFactory(slug="sbnd", name="SBND")
    client = api(liaison)
    existing = _answer(client.patch(f"{URL}{draft.pk}/", {"experiment": "sbnd"}, format="json"))
    unknown = _answer(client.patch(f"{URL}{draft.pk}/", {"experiment": "nope"}, format="json"))
    assert (
        existing
        == unknown
        == (
            400,
            {"experiment": ["a request cannot move to another experiment"]},
        )
    )
    # Its own experiment is no change at all.
    same = client.patch(f"{URL}{draft.pk}/", {"experiment": "dune"}, format="json")
    assert same.status_code == 200


def test_members_setting_the_assignee_get_one_answer_for_any_username(
    api, liaison, operator, draft
):
    UserFactory(username="someone")
    client = api(liaison)
    answers = {
        name: _answer(client.patch(f"{URL}{draft.pk}/", {"assignee": name}, format="json"))
        for name in ["op", "someone", "no-such-user", "x" * 150]
    }
    assert set(map(repr, answers.values())) == {
        repr((403, {"detail": "Only operators change assignee."}))
    }


def test_operators_get_one_answer_for_unknown_and_non_operator_usernames(
    api, liaison, operator, experiment, draft
):
    draft.state = RequestState.SUBMITTED
    draft.save(update_fields=["state"])
    UserFactory(username="someone")
    client = api(operator)
    known = _answer(client.patch(f"{URL}{draft.pk}/", {"assignee": "someone"}, format="json"))
    unknown = _answer(client.patch(f"{URL}{draft.pk}/", {"assignee": "nobody"}, format="json"))
    assert known == (400, {"assignee": ["someone is not an operator"]})
    assert unknown == (400, {"assignee": ["nobody is not an operator"]})
    done = client.patch(f"{URL}{draft.pk}/", {"assignee": "op"}, format="json")
    assert (done.status_code, done.json()["assignee"]) == (200, "op")
    cleared = client.patch(f"{URL}{draft.pk}/", {"assignee": None}, format="json")
    assert (cleared.status_code, cleared.json()["assignee"]) == (200, None)

"""The requests list: each user's experiments only, filters, and the way in from home."""

import pytest
from django.urls import reverse

from requests_app.choices import RequestState
from tests.requests_app.builders import make_request, qualify

LIST = reverse("requests:list")


@pytest.fixture
def requests(experiment, other_experiment, liaison, other_liaison, operator):
    qualify(experiment, liaison)
    qualify(other_experiment, other_liaison)
    return {
        "draft": make_request(experiment, liaison, RequestState.DRAFT, title="Beam nu_mu"),
        "submitted": make_request(experiment, operator, RequestState.SUBMITTED, title="Supernova"),
        "theirs": make_request(other_experiment, other_liaison, RequestState.SUBMITTED),
    }


def numbers(response):
    return {row.record.number for row in response.context["page"].object_list}


def test_each_user_sees_their_experiments_requests(
    client, requests, liaison, physicist, other_liaison, operator
):
    ours = {requests["draft"].number, requests["submitted"].number}
    for user in (liaison, physicist):
        client.force_login(user)
        assert numbers(client.get(LIST)) == ours
    client.force_login(other_liaison)
    assert numbers(client.get(LIST)) == {requests["theirs"].number}
    client.force_login(operator)
    assert len(numbers(client.get(LIST))) == 3


def test_anonymous_goes_to_login(client):
    response = client.get(LIST)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_filters(client, requests, liaison, operator):
    client.force_login(operator)
    assert numbers(client.get(LIST, {"state": "draft"})) == {requests["draft"].number}
    assert numbers(client.get(LIST, {"experiment": "sbnd"})) == {requests["theirs"].number}
    assert numbers(client.get(LIST, {"q": "supernova"})) == {requests["submitted"].number}
    assert numbers(client.get(LIST, {"q": requests["theirs"].number})) == {
        requests["theirs"].number
    }
    client.force_login(liaison)
    assert numbers(client.get(LIST, {"mine": "on"})) == {requests["draft"].number}
    # Another experiment's slug shows nothing rather than its requests.
    assert numbers(client.get(LIST, {"experiment": "sbnd"})) == set()


def test_list_links_to_each_request_and_offers_filing(client, requests, liaison, physicist):
    client.force_login(liaison)
    html = client.get(LIST).content.decode()
    assert requests["draft"].get_absolute_url() in html
    assert reverse("requests:new") in html
    client.force_login(physicist)
    assert reverse("requests:new") not in client.get(LIST).content.decode()


def test_home_and_nav_lead_to_the_pages(client, liaison, operator):
    client.force_login(liaison)
    html = client.get(reverse("requests:home")).content.decode()
    assert reverse("requests:new") in html and LIST in html
    assert reverse("requests:triage") not in html
    client.force_login(operator)
    html = client.get(reverse("requests:home")).content.decode()
    for name in ("requests:triage", "experiments:training_list", "experiments:code_list"):
        assert reverse(name) in html

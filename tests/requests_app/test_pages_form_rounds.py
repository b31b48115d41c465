"""Forms: one round of errors (no browser validation in between), a summary at the top
linking to each field, Enter takes the primary action, drafts with any subset of fields."""

import re

import pytest
from django.urls import reverse

from requests_app.choices import RequestState
from requests_app.models import ProductionRequest
from requests_app.services import transition
from tests.requests_app.builders import make_request, qualify

NEW = reverse("requests:new")


@pytest.fixture
def template(experiment, liaison):
    return qualify(experiment, liaison)


def post(experiment, intent="save", **fields):
    data = {
        "experiment": experiment.slug,
        "ticket": "",
        "physics_group": "",
        "title": "",
        "description": "",
        "deadline": "",
        "priority": "normal",
        "intent": intent,
        "samples-TOTAL_FORMS": "0",
        "samples-INITIAL_FORMS": "0",
        "samples-MIN_NUM_FORMS": "0",
        "samples-MAX_NUM_FORMS": "1000",
    }
    data.update(fields)
    return data


def test_a_draft_with_only_a_title_is_saved(client, experiment, liaison, template):
    client.force_login(liaison)
    response = client.post(NEW, post(experiment, title="Beam nu_mu, to finish"))
    assert response.status_code == 302
    draft = ProductionRequest.objects.get()
    assert (draft.title, draft.ticket, draft.physics_group, draft.deadline) == (
        "Beam nu_mu, to finish",
        "",
        None,
        None,
    )
    assert draft.state == RequestState.DRAFT
    # Its page, the lists and the home page show it without a deadline.
    for url in (draft.get_absolute_url(), reverse("requests:list"), reverse("requests:home")):
        assert client.get(url).status_code == 200
    # And an entirely empty draft too.
    assert client.post(NEW, post(experiment)).status_code == 302
    assert ProductionRequest.objects.count() == 2


def test_submitting_an_incomplete_request_lists_every_gap_in_one_round(
    client, experiment, liaison, template
):
    client.force_login(liaison)
    response = client.post(NEW, post(experiment, intent="submit", title="Only a title"))
    assert response.status_code == 200
    assert not ProductionRequest.objects.exists()  # a refused submit saves nothing
    html = response.content.decode()
    summary = html[html.index('id="error-summary"') :]
    summary = summary[: summary.index("</div>")]
    for field_id in ("id_ticket", "id_physics_group", "id_deadline"):
        assert f'href="#{field_id}"' in summary
    assert "add at least one sample" in summary
    assert "Only a title" in html  # what was typed is kept


def test_a_given_value_is_still_checked_in_a_draft(client, experiment, liaison, template):
    client.force_login(liaison)
    response = client.post(NEW, post(experiment, ticket="not a ticket", title="x"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="#id_ticket"' in html and "is not a service-desk reference" in html
    assert not ProductionRequest.objects.exists()


def test_the_form_leaves_validation_to_the_server_and_enter_takes_the_primary_action(
    client, experiment, liaison, operator, template
):
    client.force_login(liaison)
    html = client.get(NEW).content.decode()
    form = re.search(r"<form [^>]*data-request-form[^>]*>", html).group(0)
    assert "novalidate" in form
    # The default button (first in the form) has the primary action: Submit.
    first = re.search(r'<button type="submit" name="intent" value="(\w+)"', html).group(1)
    assert first == "submit"
    assert 'value="submit" class="primary" data-primary-action' in html
    # Where Submit is not offered (a submitted request's owner edits), Save is primary.
    req = make_request(experiment, liaison, RequestState.SUBMITTED)
    transition(req, "request_info", operator, "more")
    edit = client.get(reverse("requests:edit", args=[req.number])).content.decode()
    assert "novalidate" in re.search(r"<form [^>]*data-request-form[^>]*>", edit).group(0)


def test_a_draft_can_be_cleared_but_a_needs_info_request_cannot(experiment, liaison, template):
    from django.core.exceptions import ValidationError

    from requests_app.services import update_request

    draft = make_request(experiment, liaison, RequestState.DRAFT)
    update_request(draft, liaison, {"deadline": None, "ticket": ""})
    draft.refresh_from_db()
    assert (draft.deadline, draft.ticket) == (None, "")
    asked = make_request(experiment, liaison, RequestState.NEEDS_INFO)
    with pytest.raises(ValidationError) as exc:
        update_request(asked, liaison, {"deadline": None})
    assert "deadline" in exc.value.message_dict


def test_a_bare_draft_opens_everywhere(client, experiment, liaison, template):
    from requests_app.services import create_request

    draft = create_request(liaison, experiment, {"title": ""}, [], incomplete=True)
    client.force_login(liaison)
    for url in (
        draft.get_absolute_url(),
        reverse("requests:edit", args=[draft.number]),
        reverse("monitoring:request", args=[draft.number]),
        reverse("requests:list") + "?sort=deadline",
        reverse("requests:list") + "?format=csv",
        f"/api/v1/requests/{draft.number}/",
        reverse("requests:home"),
        reverse("monitoring:experiment", args=[experiment.slug]),
        reverse("monitoring:csv", args=[experiment.slug]),
    ):
        assert client.get(url).status_code == 200, url

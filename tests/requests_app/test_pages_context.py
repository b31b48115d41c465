"""Context: ticket numbers link to the service desk when its URL is configured; the
site menu folds on a phone behind a button; every page names its time zone."""

import pytest
from django.urls import reverse

from requests_app.choices import RequestState
from tests.requests_app.builders import make_request, qualify


@pytest.fixture
def req(experiment, liaison):
    qualify(experiment, liaison)
    return make_request(experiment, liaison, RequestState.SUBMITTED, ticket="RITM0012345")


def test_ticket_links_to_the_service_desk(client, req, operator, settings):
    settings.OPOS_TICKET_URL = "https://desk.example.org/nav_to.do?number={ticket}"
    link = 'href="https://desk.example.org/nav_to.do?number=RITM0012345"'
    client.force_login(operator)
    for url in (req.get_absolute_url(), reverse("requests:list"), reverse("requests:triage")):
        assert link in client.get(url).content.decode(), url


def test_without_a_desk_url_tickets_are_text(client, req, operator, settings):
    settings.OPOS_TICKET_URL = ""
    client.force_login(operator)
    html = client.get(req.get_absolute_url()).content.decode()
    assert "RITM0012345" in html and "nav_to.do" not in html


def test_the_menu_folds_behind_a_button_without_inline_script(client, operator):
    client.force_login(operator)
    html = client.get(reverse("requests:home")).content.decode()
    assert 'class="nav-toggle" aria-expanded="false" aria-controls="site-menu"' in html
    assert 'id="site-menu"' in html and "/static/js/nav.js" in html
    assert "<script>" not in html and "style=" not in html


def test_no_template_comment_leaks_into_a_page(client, operator, liaison):
    """Django's {# #} is one line only; a longer one would show as text."""
    for user, url in ((operator, reverse("requests:home")), (liaison, reverse("requests:new"))):
        client.force_login(user)
        assert "{#" not in client.get(url).content.decode()


def test_the_dataset_catalogue_is_in_the_navigation(client, physicist):
    client.force_login(physicist)
    html = client.get(reverse("requests:home")).content.decode()
    assert f'href="{reverse("campaigns:dataset_list")}">Datasets</a>' in html

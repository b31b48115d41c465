"""The next step in sight: "needs your answer" first on the request page and in the
email, home pages listing what waits for each role, no forecast before approval, a
watch button, and the operators emailed when a request is submitted."""

import pytest
from django.core import mail
from django.urls import reverse

from campaigns.choices import CampaignState
from campaigns.services import schedule_requests
from experiments.models import AuditEvent
from requests_app.choices import RequestState
from requests_app.services import transition
from tests.campaigns.factories import CampaignFactory, approved_request
from tests.factories import UserFactory
from tests.requests_app.builders import make_request, qualify

S = RequestState
HOME = reverse("requests:home")


@pytest.fixture
def template(experiment, liaison):
    return qualify(experiment, liaison)


def test_needs_your_answer_is_first_on_the_page_for_the_liaison(
    client, experiment, liaison, operator, physicist, template
):
    req = make_request(experiment, liaison, S.SUBMITTED)
    transition(req, "request_info", operator, "Which flux file, please?")
    client.force_login(liaison)
    html = client.get(req.get_absolute_url()).content.decode()
    assert 'id="needs-answer"' in html
    banner = html[html.index('id="needs-answer"') :]
    banner = banner[: banner.index("</section>")]
    assert "Needs your answer" in banner and "Which flux file, please?" in banner
    assert "op asked for information" in banner
    # Above everything else of the request: before its facts and the history.
    assert html.index('id="needs-answer"') < html.index('id="facts-heading"')
    # Only the liaisons are asked; a physicist or the operator sees no banner.
    for user in (physicist, operator):
        client.force_login(user)
        assert 'id="needs-answer"' not in client.get(req.get_absolute_url()).content.decode()


def test_needs_your_answer_email(
    experiment, liaison, operator, template, django_capture_on_commit_callbacks
):
    req = make_request(experiment, liaison, S.SUBMITTED)
    with django_capture_on_commit_callbacks(execute=True):
        transition(req, "request_info", operator, "Which flux file?")
    [message] = mail.outbox
    assert message.subject == f"[{req.number}] needs your answer: op asked for information"
    assert "needs your answer" in message.body and "Which flux file?" in message.body
    assert "submitting it again" in message.body


def test_operators_are_emailed_when_a_request_is_submitted(
    experiment, liaison, operator, admin_user, template, django_capture_on_commit_callbacks
):
    req = make_request(experiment, liaison, S.DRAFT, title="Beam nu_mu")
    with django_capture_on_commit_callbacks(execute=True):
        transition(req, "submit", liaison)
    [to_operators] = [m for m in mail.outbox if m.subject.startswith("[OPOS]")]
    assert sorted(to_operators.to) == ["boss@example.org", "op@example.org"]
    assert to_operators.subject == f"[OPOS] {req.number} submitted: Beam nu_mu"
    assert reverse("requests:triage") in to_operators.body
    assert req.get_absolute_url() in to_operators.body


def test_not_approved_shows_not_scheduled_yet(client, experiment, liaison, operator, template):
    for state in (S.SUBMITTED, S.NEEDS_INFO):
        req = make_request(experiment, liaison, state)
        client.force_login(operator)
        html = client.get(req.get_absolute_url()).content.decode()
        assert "Not scheduled yet" in html
        assert "finish around" not in html and "On track" not in html


def test_liaison_home_lists_what_needs_their_answer(
    client, experiment, liaison, other_liaison, operator, template, django_assert_max_num_queries
):
    asked = make_request(experiment, liaison, S.NEEDS_INFO, title="Flux question")
    make_request(experiment, liaison, S.SUBMITTED, title="Waiting on operators")
    draft = make_request(experiment, liaison, S.DRAFT, title="Half done")
    client.force_login(liaison)
    with django_assert_max_num_queries(12):
        html = client.get(HOME).content.decode()
    assert "Needs your answer" in html
    assert asked.get_absolute_url() in html and draft.get_absolute_url() in html
    assert "Waiting on operators" not in html
    client.force_login(other_liaison)  # another experiment's liaison is not asked
    assert asked.get_absolute_url() not in client.get(HOME).content.decode()


def test_operator_home_lists_triage_and_blocked_campaigns(
    client, experiment, liaison, operator, template, django_assert_max_num_queries
):
    waiting = make_request(experiment, liaison, S.SUBMITTED, title="Decide me")
    campaign = CampaignFactory(experiment=experiment, name="MCC5.0", created_by=operator)
    schedule_requests(campaign, [approved_request(experiment).pk], operator)
    campaign.state = CampaignState.ACTIVE
    campaign.fault = "submission failed: backend unreachable"
    campaign.save()
    client.force_login(operator)
    with django_assert_max_num_queries(20):
        html = client.get(HOME).content.decode()
    assert "To triage" in html and waiting.get_absolute_url() in html
    assert "Blocked campaigns" in html and campaign.get_absolute_url() in html
    assert "submission failed: backend unreachable" in html


def test_watch_and_unwatch(client, experiment, liaison, physicist, other_liaison, template):
    req = make_request(experiment, liaison, S.SUBMITTED)
    url = reverse("requests:watch", args=[req.number])
    client.force_login(physicist)
    assert ">Watch</button>" in client.get(req.get_absolute_url()).content.decode()
    response = client.post(url, {"watch": "1"})
    assert response.status_code == 302 and response["Location"] == req.get_absolute_url()
    assert list(req.watchers.all()) == [physicist]
    assert AuditEvent.objects.filter(action="request.watch", actor=physicist).count() == 1
    client.post(url, {"watch": "1"})  # twice: one watcher, one record
    assert req.watchers.count() == 1
    assert AuditEvent.objects.filter(action="request.watch").count() == 1
    assert ">Unwatch</button>" in client.get(req.get_absolute_url()).content.decode()
    client.post(url, {"watch": "0"})
    assert req.watchers.count() == 0
    assert AuditEvent.objects.filter(action="request.unwatch", actor=physicist).exists()
    # Someone who cannot see the request cannot watch it.
    client.force_login(other_liaison)
    assert client.post(url, {"watch": "1"}).status_code == 404
    assert client.get(url).status_code == 405
    assert req.watchers.count() == 0


def test_a_watcher_is_emailed(
    experiment, liaison, operator, template, django_capture_on_commit_callbacks
):
    req = make_request(experiment, liaison, S.SUBMITTED)
    req.watchers.add(UserFactory(username="w", email="w@example.org"))
    with django_capture_on_commit_callbacks(execute=True):
        transition(req, "approve", operator)
    assert any("w@example.org" in m.to for m in mail.outbox)

"""Email on transitions and comments: to the requester and watchers, never blocking."""

import logging

import pytest
from django.conf import settings
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend

from requests_app.choices import RequestState
from requests_app.models import ProductionRequest, Transition
from requests_app.services import add_comment, system_transition, transition
from tests.factories import UserFactory
from tests.requests_app.builders import make_request, qualify


class FailingBackend(BaseEmailBackend):
    """A mail server that refuses everything."""

    def send_messages(self, email_messages):
        raise ConnectionRefusedError("SMTP server down")


FAILING = f"{__name__}.FailingBackend"


@pytest.fixture
def req(experiment, liaison):
    qualify(experiment, liaison)
    req = make_request(experiment, liaison, RequestState.SUBMITTED)
    req.watchers.add(UserFactory(username="watcher"), UserFactory(username="silent", email=""))
    return req


def link(req) -> str:
    return f"{settings.SITE_URL}{req.get_absolute_url()}"


def test_transition_mails_requester_and_watchers(req, operator, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        transition(req, "request_info", operator, "Which flux file?")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert sorted(message.to) == ["liaison@example.org", "watcher@example.org"]
    assert message.subject == f"[{req.number}] needs your answer: op asked for information"
    assert "Which flux file?" in message.body
    assert link(req) in message.body
    assert "op asked for information" in message.body


def test_the_actor_is_not_mailed_about_their_own_action(
    req, liaison, operator, django_capture_on_commit_callbacks
):
    transition(req, "request_info", operator, "more please")
    with django_capture_on_commit_callbacks(execute=True):
        transition(req, "submit", liaison)
    # The watcher, and the operators (a request awaits their decision); not the liaison.
    assert [m.to for m in mail.outbox] == [["watcher@example.org"], ["op@example.org"]]


def test_assignee_is_mailed(req, operator, admin_user, django_capture_on_commit_callbacks):
    req.assignee = operator
    req.save()
    with django_capture_on_commit_callbacks(execute=True):
        transition(req, "approve", admin_user)
    assert sorted(mail.outbox[0].to) == [
        "liaison@example.org",
        "op@example.org",
        "watcher@example.org",
    ]


def test_system_transition_mails_too(req, operator, django_capture_on_commit_callbacks):
    transition(req, "approve", operator)
    with django_capture_on_commit_callbacks(execute=True):
        system_transition(req, "schedule", note="campaign MCC5.0")
    assert "OPOS Tracker took the action" in mail.outbox[0].body


def test_comment_mails_with_a_link(req, operator, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        add_comment(req, operator, "The account permission problem is solved.")
    (message,) = mail.outbox
    assert message.subject == f"[{req.number}] comment from op"
    assert sorted(message.to) == ["liaison@example.org", "watcher@example.org"]
    assert "The account permission problem is solved." in message.body
    assert link(req) in message.body


def test_no_mail_before_commit(req, operator, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        transition(req, "approve", operator)
    assert mail.outbox == []
    # One mail waits for the commit (beside the page cache's "data changed").
    mails = [c for c in callbacks if c.__module__ != "common.pagecache"]
    assert len(mails) == 1


def test_failing_mail_server_does_not_block_the_transition(
    req, operator, settings, caplog, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = FAILING
    with (
        caplog.at_level(logging.ERROR, logger="requests_app.services.notifications"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        result = transition(req, "approve", operator)
    assert result.state == RequestState.APPROVED
    assert ProductionRequest.objects.get(pk=req.pk).state == RequestState.APPROVED
    assert Transition.objects.filter(request=req, action="approve").count() == 1
    assert mail.outbox == []
    assert f"could not send notification for {req.number}" in caplog.text


def test_failing_mail_server_does_not_block_a_comment(
    req, liaison, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = FAILING
    with django_capture_on_commit_callbacks(execute=True):
        comment = add_comment(req, liaison, "still waiting")
    assert comment.pk is not None
    assert req.comments.count() == 1

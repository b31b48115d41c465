"""The triage queue, the requests list and a request's page cost a fixed number of queries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from requests_app.choices import RequestState
from requests_app.models import Comment, Transition
from tests.factories import SampleFactory, StageTemplateFactory, WorkflowTemplateFactory
from tests.requests_app.builders import make_request, qualify

# Measured: triage 9, list 7, detail 17 (session, user, roles and the page itself).
# The detail page includes the deadline forecast (6 aggregate queries of execution).
# detail: 27 with the read side's commitments and service-desk clock (two queries).
MAX_QUERIES = {"triage": 11, "list": 9, "detail": 27}


@pytest.fixture
def template(experiment, liaison):
    return qualify(experiment, liaison)


def many_requests(experiment, liaison, operator, count):
    for _ in range(count):
        make_request(experiment, liaison, RequestState.SUBMITTED, samples=2, assignee=operator)


def big_request(experiment, liaison, operator, size):
    request = make_request(experiment, liaison, RequestState.SUBMITTED, samples=0)
    templates = []
    for i in range(min(size, 5)):
        workflow = WorkflowTemplateFactory(experiment=experiment)
        stage = StageTemplateFactory(template=workflow, position=1, name=f"s{i}")
        stage.code.owners.add(liaison)
        templates.append(workflow)
    for i in range(size):
        SampleFactory(request=request, template=templates[i % len(templates)])
        Transition.objects.create(
            request=request,
            action="edit",
            from_state="submitted",
            to_state="submitted",
            actor=operator,
            changes={"priority": ["normal", "high"]},
        )
        Comment.objects.create(request=request, author=liaison if i % 2 else operator, body="hi")
    request.watchers.add(operator)
    return request


def count(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("page", ["triage", "list"])
def test_queue_and_list_queries_do_not_grow(
    client, experiment, liaison, operator, template, page, django_assert_max_num_queries
):
    client.force_login(operator)
    url = reverse(f"requests:{page}")
    many_requests(experiment, liaison, operator, 3)
    small = count(client, url)
    many_requests(experiment, liaison, operator, 57)
    with django_assert_max_num_queries(MAX_QUERIES[page]):
        client.get(url)
    assert count(client, url) == small


@pytest.mark.parametrize("size", [3, 60])
def test_detail_queries_are_bounded(
    client, experiment, liaison, operator, template, size, django_assert_max_num_queries
):
    request = big_request(experiment, liaison, operator, size)
    client.force_login(operator)
    with django_assert_max_num_queries(MAX_QUERIES["detail"]):
        response = client.get(request.get_absolute_url())
    assert len(response.context["samples"]) == size
    assert len(response.context["timeline"]) == 2 * size


def test_detail_queries_do_not_grow(client, experiment, liaison, operator, template):
    client.force_login(liaison)
    small = count(client, big_request(experiment, liaison, operator, 3).get_absolute_url())
    large = count(client, big_request(experiment, liaison, operator, 60).get_absolute_url())
    assert large == small

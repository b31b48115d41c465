"""The service-desk clock: per request from its transition log, against the experiment's
SLA targets; aggregated per experiment and operator by month; in the report and /metrics."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from monitoring.services import sla
from requests_app.choices import RequestState as S
from requests_app.models import Transition
from tests.requests_app.builders import make_request, qualify

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def step(action, src, dst, hours, actor=None):
    return sla.Step(action, src, dst, T0 + hours * H, actor)


def test_clock_from_a_log_with_a_question_and_a_hold():
    log = [
        step("submit", S.DRAFT, S.SUBMITTED, 0),
        step("request_info", S.SUBMITTED, S.NEEDS_INFO, 5, actor=7),
        step("submit", S.NEEDS_INFO, S.SUBMITTED, 15),
        step("approve", S.SUBMITTED, S.APPROVED, 20, actor=8),
        step("hold", S.APPROVED, S.ON_HOLD, 21),
        step("resume", S.ON_HOLD, S.APPROVED, 24),
        step("schedule", S.APPROVED, S.SCHEDULED, 25),
        step("start", S.SCHEDULED, S.IN_PRODUCTION, 30),
        step("complete", S.IN_PRODUCTION, S.COMPLETED, 100),
    ]
    c = sla.clock(reversed(log), T0 + 200 * H)
    hours = {k: (v / 3600 if v is not None else None) for k, v in c.seconds.items()}
    assert hours == {
        "first_response": 5,
        "needs_info": 10,
        "on_hold": 3,
        "to_approval": 20,
        "to_first_job": 30,
        "to_completion": 100,
    }
    assert c.responder_id == 7 and c.running == set()


def test_an_open_wait_counts_until_now():
    log = [
        step("submit", S.DRAFT, S.SUBMITTED, 0),
        step("request_info", S.SUBMITTED, S.NEEDS_INFO, 2),
    ]
    c = sla.clock(log, T0 + 12 * H)
    assert c.seconds["needs_info"] == 10 * 3600 and c.running == {"needs_info"}
    assert c.seconds["to_approval"] is None


def test_quantile_is_a_figure_that_happened():
    assert sla.quantile([5, 1, 3, 2, 4, 6, 7, 8, 9, 10], 0.9) == 9
    assert sla.quantile([], 0.9) is None


def _log(request, rows):
    """Transitions written as the service would have, at chosen moments."""
    for action, src, dst, at, actor in rows:
        t = Transition.objects.create(
            request=request, action=action, from_state=src, to_state=dst, actor=actor
        )
        Transition.objects.filter(pk=t.pk).update(created=at)


@pytest.fixture
def answered(experiment, liaison, operator):
    """Two requests this month: one answered in 2 h and approved, one in 30 h (over the
    24 h target) and still waiting for approval."""
    qualify(experiment, liaison)
    now = timezone.now()
    # This month's (the metrics show this month's), whatever day the test runs.
    month_start = timezone.localtime(now).replace(day=1, hour=0, minute=0, second=0)
    start = max(now - dt.timedelta(days=2), month_start + dt.timedelta(minutes=1))
    fast = make_request(experiment, liaison, S.APPROVED)
    _log(
        fast,
        [
            ("submit", S.DRAFT, S.SUBMITTED, start, liaison),
            ("approve", S.SUBMITTED, S.APPROVED, start + 2 * H, operator),
        ],
    )
    slow = make_request(experiment, liaison, S.NEEDS_INFO)
    _log(
        slow,
        [
            ("submit", S.DRAFT, S.SUBMITTED, start, liaison),
            ("request_info", S.SUBMITTED, S.NEEDS_INFO, start + 30 * H, operator),
        ],
    )
    return fast, slow


def test_request_page_shows_each_step_against_its_target(client, answered, operator):
    fast, slow = answered
    client.force_login(operator)
    page = client.get(reverse("monitoring:request", args=[slow.number]))
    rows = {r.key: r for r in page.context["clock"]}
    assert rows["first_response"].seconds == 30 * 3600 and rows["first_response"].late
    assert rows["needs_info"].running
    assert b"Service-desk clock" in page.content and b"over target" in page.content
    rows = {r.key: r for r in sla.request_clock(fast)}
    assert rows["to_approval"].seconds == 2 * 3600 and not rows["to_approval"].late


def test_sla_page_aggregates_per_experiment_and_operator(
    client, answered, operator, liaison, other_liaison, django_assert_max_num_queries
):
    client.force_login(operator)
    with django_assert_max_num_queries(12):
        page = client.get(reverse("monitoring:sla"))
    (row,) = page.context["per_experiment"]
    assert row.requests == 2
    assert row.median["first_response"] == 16 * 3600  # the median of 2 h and 30 h
    assert row.p90["first_response"] == 30 * 3600
    assert row.late["first_response"] == 1
    (by_op,) = page.context["per_operator"]
    assert by_op.operator == "op" and by_op.requests == 2
    assert b"Per operator" in page.content
    # Someone of another experiment sees none of it.
    client.force_login(other_liaison)
    assert client.get(reverse("monitoring:sla")).context["per_experiment"] == []


def test_report_and_metrics_carry_the_clock(client, answered, operator, experiment):
    client.force_login(operator)
    report = client.get(reverse("monitoring:report", args=[experiment.slug]))
    assert b"Service-desk clock" in report.content and b"1 over" in report.content
    metrics = client.get("/metrics").content.decode()
    assert (
        'opos_sla_seconds{experiment="dune",quantile="0.9",step="first_response"} 108000.0'
        in metrics
    )
    assert 'opos_sla_over_target{experiment="dune",step="first_response"} 1' in metrics

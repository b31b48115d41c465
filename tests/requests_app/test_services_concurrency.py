"""Two people deciding at once: exactly one wins, the other is told what happened.

On PostgreSQL real threads race on the row lock. SQLite serialises writers
(immediate transactions), so there the compare-and-set on ``version`` is the
guard; it is tested on every database by making the version stale mid-way.
"""

import importlib
import threading
import time

import pytest
from django.db import connection, connections
from django.db.models import F

from requests_app.choices import RequestState
from requests_app.models import ProductionRequest, Transition
from requests_app.services import TransitionError, create_request, eligibility, transition
from tests.factories import UserFactory, grant
from tests.requests_app.builders import make_request, qualify, request_fields

# The transition service calls the name it imported: patched there, it is what approval runs.
transitions_module = importlib.import_module("requests_app.services.transitions")

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: SQLite serialises writers, so threads cannot race there "
    "(its guard, the version compare-and-set, is tested below on every database)",
)


@pytest.fixture
def submitted(experiment, liaison):
    qualify(experiment, liaison)
    return make_request(experiment, liaison, RequestState.SUBMITTED)


@pytest.fixture
def second_operator(db):
    return grant(UserFactory(username="op2"), "operator")


@pytest.fixture
def slow_checks(monkeypatch):
    """Hold the row lock a little longer, so the second decider surely waits on it."""
    real = eligibility.unmet

    def slow(request):
        time.sleep(0.2)
        return real(request)

    monkeypatch.setattr(transitions_module, "unmet", slow)


def race(*calls):
    """Run each call in its own thread (own connection), released together."""
    barrier = threading.Barrier(len(calls))
    outcomes: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=10)
            outcomes[index] = call()
        except Exception as exc:
            outcomes[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_operators_approve_at_once(submitted, operator, second_operator, slow_checks):
    outcomes = race(
        lambda: transition(submitted.pk, "approve", operator),
        lambda: transition(submitted.pk, "approve", second_operator),
    )
    won = [o for o in outcomes if isinstance(o, ProductionRequest)]
    lost = [o for o in outcomes if isinstance(o, TransitionError)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert lost[0].kind == "conflict"
    winner = Transition.objects.get(request=submitted, action="approve").actor.username
    assert f"the request is approved (approve by {winner} at" in lost[0].detail
    assert Transition.objects.filter(request=submitted).count() == 1
    submitted.refresh_from_db()
    assert (submitted.state, submitted.version) == (RequestState.APPROVED, 1)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_one_approves_while_another_rejects(submitted, operator, second_operator, slow_checks):
    outcomes = race(
        lambda: transition(submitted.pk, "approve", operator),
        lambda: transition(submitted.pk, "reject", second_operator, "out of scope"),
    )
    lost = [o for o in outcomes if isinstance(o, TransitionError)]
    assert len(lost) == 1, outcomes
    assert lost[0].kind == "conflict"
    record = Transition.objects.get(request=submitted)
    submitted.refresh_from_db()
    assert submitted.state == record.to_state
    assert submitted.state in {RequestState.APPROVED, RequestState.REJECTED}
    assert f"({record.action} by {record.actor.username} at" in lost[0].detail


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_filing_gets_distinct_numbers(experiment, liaison, operator):
    qualify(experiment, liaison)
    outcomes = race(
        *[lambda: create_request(liaison, experiment, request_fields(), []) for _ in range(4)]
    )
    assert all(isinstance(o, ProductionRequest) for o in outcomes), outcomes
    assert len({o.number for o in outcomes}) == 4


def test_stale_version_loses_the_compare_and_set(submitted, operator, monkeypatch):
    """Someone else commits between our read and our write: the write must not land."""
    real = eligibility.unmet

    def meanwhile(request):
        ProductionRequest.objects.filter(pk=request.pk).update(version=F("version") + 1)
        return real(request)

    monkeypatch.setattr(transitions_module, "unmet", meanwhile)
    with pytest.raises(TransitionError) as refused:
        transition(submitted, "approve", operator)
    assert refused.value.kind == "conflict"
    assert refused.value.detail == "Someone else changed the request at the same time; reload."
    assert not Transition.objects.filter(request=submitted).exists()
    assert ProductionRequest.objects.get(pk=submitted.pk).state == RequestState.SUBMITTED


def test_sequential_second_decision_is_told_what_happened(submitted, operator, second_operator):
    transition(submitted, "approve", operator)
    with pytest.raises(TransitionError) as refused:
        transition(submitted, "approve", second_operator)
    assert refused.value.kind == "conflict"
    assert "the request is approved (approve by op at" in refused.value.detail
    assert Transition.objects.filter(request=submitted).count() == 1

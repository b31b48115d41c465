"""The request state machine: every action from every state by every role.

The expected outcomes come from the state machine's documented table (the
docstring of ``requests_app/workflow.py``), written out here on its own, so
that a wrong entry in ``workflow.ACTIONS`` fails a test instead of being
copied into the expectation.
"""

import datetime as dt

import pytest
from django.utils import timezone

from requests_app.choices import RequestState as S
from requests_app.models import ProductionRequest, Transition
from requests_app.services import TransitionError, system_transition, transition
from requests_app.services import transitions as transitions_module
from requests_app.workflow import ACTIONS, USER_ACTIONS, Actor
from tests.requests_app.builders import make_request, qualify

OPEN = {S.DRAFT, S.SUBMITTED, S.NEEDS_INFO, S.APPROVED, S.SCHEDULED, S.IN_PRODUCTION, S.ON_HOLD}
# action: (from states, to state (None: the held-from state), who may)
TABLE = {
    "submit": ({S.DRAFT, S.NEEDS_INFO}, S.SUBMITTED, {"liaison"}),
    "request_info": ({S.SUBMITTED}, S.NEEDS_INFO, {"operator"}),
    "approve": ({S.SUBMITTED}, S.APPROVED, {"operator"}),
    "reject": ({S.SUBMITTED, S.NEEDS_INFO}, S.REJECTED, {"operator"}),
    "hold": ({S.APPROVED, S.SCHEDULED, S.IN_PRODUCTION}, S.ON_HOLD, {"operator"}),
    "resume": ({S.ON_HOLD}, None, {"operator"}),
    "cancel": (OPEN, S.CANCELLED, {"liaison", "operator"}),
    "close": ({S.COMPLETED}, S.CLOSED, {"operator"}),
}
SYSTEM_TABLE = {
    "schedule": ({S.APPROVED}, S.SCHEDULED),
    "unschedule": ({S.SCHEDULED}, S.APPROVED),
    "start": ({S.SCHEDULED}, S.IN_PRODUCTION),
    "complete": ({S.IN_PRODUCTION, S.SCHEDULED}, S.COMPLETED),
}
NOTE_REQUIRED = {"request_info", "reject", "hold"}
# Fixture name -> the role it acts in on the DUNE request.
ROLES = {
    "liaison": "liaison",
    "other_liaison": None,  # liaison of another experiment
    "physicist": None,
    "operator": "operator",
    "admin_user": "operator",
}


@pytest.fixture
def template(experiment, liaison):
    return qualify(experiment, liaison)


@pytest.fixture
def clock(monkeypatch):
    """Time travel: ``clock.advance(hours=2)`` moves every ``timezone.now()``."""

    class Clock:
        now = timezone.now()

        def advance(self, **delta):
            self.now += dt.timedelta(**delta)

    clock = Clock()
    monkeypatch.setattr(transitions_module.timezone, "now", lambda: clock.now)
    return clock


def test_workflow_table_is_the_documented_table():
    assert set(USER_ACTIONS) == set(TABLE)
    for name, (sources, target, who) in TABLE.items():
        action = ACTIONS[name]
        assert action.sources == sources, name
        assert action.target == target, name
        assert {str(a) for a in action.actors} == who, name
        assert action.note_required == (name in NOTE_REQUIRED), name
    for name, (sources, target) in SYSTEM_TABLE.items():
        assert ACTIONS[name].sources == sources
        assert ACTIONS[name].target == target
        assert ACTIONS[name].actors == {Actor.SYSTEM}


def expected(action: str, state: str, role: str) -> str:
    if action not in TABLE:
        return "invalid"  # execution-side actions are not offered to people
    sources, _, who = TABLE[action]
    if ROLES[role] not in who:
        return "forbidden"
    if state not in sources:
        return "conflict"
    return "ok"


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("state", S.values)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_action_from_every_state_by_every_role(
    request, experiment, liaison, template, action, state, role
):
    user = request.getfixturevalue(role)
    req = make_request(experiment, liaison, state)
    before = (req.state, req.version, Transition.objects.count())
    note = "because" if action in NOTE_REQUIRED else ""
    outcome = expected(action, state, role)

    if outcome != "ok":
        with pytest.raises(TransitionError) as refused:
            transition(req, action, user, note)
        assert refused.value.kind == outcome, refused.value.detail
        req.refresh_from_db()
        assert (req.state, req.version, Transition.objects.count()) == before
        return

    result = transition(req, action, user, note)
    target = TABLE[action][1] or S.APPROVED  # resume: back to the held-from state
    assert result.state == target
    assert result.version == req.version + 1
    record = Transition.objects.filter(request=req).latest("id")
    assert (record.action, record.actor, record.from_state, record.to_state, record.note) == (
        action,
        user,
        state,
        target,
        note,
    )
    assert Transition.objects.count() == before[2] + 1


@pytest.mark.parametrize("note", ["", "   "])
@pytest.mark.parametrize(
    ("action", "state"),
    [("request_info", S.SUBMITTED), ("reject", S.NEEDS_INFO), ("hold", S.IN_PRODUCTION)],
)
def test_notes_are_required(experiment, liaison, operator, template, action, state, note):
    req = make_request(experiment, liaison, state)
    with pytest.raises(TransitionError) as refused:
        transition(req, action, operator, note)
    assert refused.value.kind == "invalid"
    assert refused.value.reasons == ["note: required"]
    assert ProductionRequest.objects.get(pk=req.pk).state == state
    assert not Transition.objects.filter(request=req).exists()


def test_conflict_says_who_moved_the_request(experiment, liaison, operator, template):
    req = make_request(experiment, liaison, S.SUBMITTED)
    transition(req, "approve", operator)
    with pytest.raises(TransitionError) as refused:
        transition(req, "reject", operator, "too late")
    assert refused.value.kind == "conflict"
    assert "approved (approve by op at" in refused.value.detail
    assert refused.value.reasons == ["reject needs the state: needs information, submitted"]


def test_submit_refuses_an_incomplete_request(experiment, liaison, template):
    req = make_request(experiment, liaison, S.DRAFT, samples=0, ticket="not a ticket")
    with pytest.raises(TransitionError) as refused:
        transition(req, "submit", liaison)
    assert refused.value.kind == "conflict"
    assert refused.value.reasons[0] == "samples: add at least one sample"
    assert refused.value.reasons[1].startswith("ticket: ")
    req.refresh_from_db()
    assert req.state == S.DRAFT
    assert req.submitted is None


def test_submit_records_when(experiment, liaison, template, clock):
    req = make_request(experiment, liaison, S.DRAFT)
    assert transition(req, "submit", liaison).submitted == clock.now


@pytest.mark.parametrize("held_in", [S.APPROVED, S.SCHEDULED, S.IN_PRODUCTION])
def test_hold_and_resume_return_to_the_held_state_with_the_time_counted(
    experiment, liaison, operator, template, clock, held_in
):
    req = make_request(experiment, liaison, held_in)
    held = transition(req, "hold", operator, "account permission problem at the site")
    assert (held.state, held.held_from, held.hold_started) == (S.ON_HOLD, held_in, clock.now)
    assert held.hold_reason == "account permission problem at the site"

    clock.advance(hours=2, minutes=30)
    resumed = transition(req, "resume", operator)
    assert resumed.state == held_in
    assert resumed.hold_seconds == 2.5 * 3600
    assert (resumed.held_from, resumed.hold_started, resumed.hold_reason) == ("", None, "")
    record = Transition.objects.filter(request=req).latest("id")
    assert (record.from_state, record.to_state) == (S.ON_HOLD, held_in)

    # A second hold adds to the first.
    clock.advance(days=1)
    transition(req, "hold", operator, "disk quota")
    clock.advance(minutes=45)
    assert transition(req, "resume", operator).hold_seconds == 2.5 * 3600 + 45 * 60


def test_cancel_while_on_hold_keeps_the_hold_time(experiment, liaison, operator, template, clock):
    req = make_request(experiment, liaison, S.IN_PRODUCTION)
    transition(req, "hold", operator, "blocked")
    clock.advance(hours=3)
    cancelled = transition(req, "cancel", liaison)
    assert cancelled.state == S.CANCELLED
    assert cancelled.hold_seconds == 3 * 3600
    assert cancelled.hold_started is None


@pytest.mark.parametrize("state", S.values)
@pytest.mark.parametrize("action", list(SYSTEM_TABLE))
def test_system_transitions(experiment, liaison, template, action, state):
    req = make_request(experiment, liaison, state)
    sources, target = SYSTEM_TABLE[action]
    if state not in sources:
        with pytest.raises(TransitionError) as refused:
            system_transition(req, action)
        assert refused.value.kind == "conflict"
        assert ProductionRequest.objects.get(pk=req.pk).state == state
        return
    assert system_transition(req, action, note="campaign MCC5.0").state == target
    record = Transition.objects.get(request=req)
    assert (record.action, record.actor, record.from_state, record.to_state, record.note) == (
        action,
        None,
        state,
        target,
        "campaign MCC5.0",
    )


def test_system_path_from_approval_to_closing(experiment, liaison, operator, template):
    req = make_request(experiment, liaison, S.APPROVED)
    system_transition(req, "schedule")
    system_transition(req, "start")
    system_transition(req, "complete")
    assert transition(req, "close", operator).state == S.CLOSED
    assert list(Transition.objects.filter(request=req).values_list("action", flat=True)) == [
        "schedule",
        "start",
        "complete",
        "close",
    ]


@pytest.mark.parametrize("action", [*USER_ACTIONS, "explode"])
def test_system_transition_takes_only_execution_actions(experiment, liaison, template, action):
    req = make_request(experiment, liaison, S.SUBMITTED)
    with pytest.raises(TransitionError) as refused:
        system_transition(req, action)
    assert refused.value.kind == "invalid"


def test_unknown_action_is_invalid(experiment, liaison, operator, template):
    req = make_request(experiment, liaison, S.SUBMITTED)
    with pytest.raises(TransitionError) as refused:
        transition(req, "explode", operator)
    assert refused.value.kind == "invalid"
    assert "explode" in refused.value.detail


# What taking an action does besides moving the state, as the docstring's table says.
EFFECTS = {"submit": {"hands_in"}, "approve": {"needs_eligibility"}, "hold": {"holds"}}


def test_each_action_carries_exactly_its_documented_effects():
    for name, action in ACTIONS.items():
        effects = {e for e in ("hands_in", "needs_eligibility", "holds") if getattr(action, e)}
        assert effects == EFFECTS.get(name, set()), name

"""The groups of request states in ``requests_app/choices.py`` against their meaning.

Every list of states elsewhere is one of these groups, so a wrong group shows up in many
places at once; the expectations are written out here on their own, from the state
machine's documented table, rather than copied from the module.
"""

from requests_app import choices
from requests_app.choices import RequestState as S
from requests_app.workflow import ACTIONS

EXPECTED = {
    "EDITABLE_STATES": {S.DRAFT, S.NEEDS_INFO},
    "AWAITING_OPERATOR": {S.SUBMITTED},
    "IN_TRIAGE_STATES": {S.SUBMITTED, S.NEEDS_INFO},
    "UNDECIDED_STATES": {S.DRAFT, S.SUBMITTED, S.NEEDS_INFO},
    "UNSCHEDULED_STATES": {S.SUBMITTED, S.NEEDS_INFO, S.APPROVED},
    "IN_CAMPAIGN_STATES": {S.SCHEDULED, S.IN_PRODUCTION},
    "ACTIVE_STATES": {S.APPROVED, S.SCHEDULED, S.IN_PRODUCTION, S.ON_HOLD},
    "OPEN_STATES": {S.SUBMITTED, S.NEEDS_INFO, S.APPROVED, S.SCHEDULED, S.IN_PRODUCTION}
    | {S.ON_HOLD},
    "DELIVERED_STATES": {S.COMPLETED, S.CLOSED},
    "DROPPED_STATES": {S.CANCELLED, S.REJECTED},
    "FINISHED_STATES": {S.COMPLETED, S.CLOSED, S.CANCELLED},
    "WORK_HELD_STATES": {S.ON_HOLD, S.COMPLETED, S.CLOSED, S.CANCELLED},
    "TERMINAL_STATES": {S.CLOSED, S.REJECTED, S.CANCELLED},
}


def test_each_group_holds_the_states_its_meaning_says():
    for name, states in EXPECTED.items():
        group = getattr(choices, name)
        assert isinstance(group, frozenset), name
        assert set(group) == states, name


def test_terminal_states_are_exactly_those_no_action_leaves():
    left = set().union(*(a.sources for a in ACTIONS.values()))
    assert set(choices.TERMINAL_STATES) == set(S) - left


def test_every_state_before_its_end_may_be_cancelled_and_no_other():
    # Open requests and drafts: the cancel action's sources are derived from the groups.
    assert ACTIONS["cancel"].sources == choices.OPEN_STATES | {S.DRAFT}
    assert not ACTIONS["cancel"].sources & (choices.FINISHED_STATES | choices.TERMINAL_STATES)


def test_every_state_is_open_draft_or_finished_and_only_one_of_them():
    ended = choices.DELIVERED_STATES | choices.DROPPED_STATES
    assert choices.OPEN_STATES | {S.DRAFT} | ended == set(S)
    assert not choices.OPEN_STATES & ended
    # Work is held for every finished request, and never for one that may still run.
    assert choices.FINISHED_STATES <= choices.WORK_HELD_STATES
    assert not choices.WORK_HELD_STATES & choices.IN_CAMPAIGN_STATES

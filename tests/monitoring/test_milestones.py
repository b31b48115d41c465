"""Milestones: first job running, full speed, half and all events, as time since launch."""

import datetime as dt

import pytest

from monitoring.choices import MilestoneKind
from monitoring.models import Milestone
from monitoring.services import milestones as ms
from monitoring.services import record_snapshots

from .builders import launch, planned_campaign, seed_shape, set_progress

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)


def test_derive_takes_the_first_state_past_each_threshold():
    def state(hours, running, done, started=True):
        return ms.State(T0 + dt.timedelta(hours=hours), started, running, done, 1000, slots=10)

    history = [
        state(0, 0, 0, started=False),
        state(1, 2, 0),
        state(2, 7, 100),
        state(3, 8, 400),  # 8 of 10 slots: full speed
        state(4, 10, 500),  # half
        state(5, 3, 1000),  # all
    ]
    first = ms.derive(reversed(history))  # order of the input does not matter
    assert first == {
        MilestoneKind.FIRST_RUNNING: T0 + dt.timedelta(hours=1),
        MilestoneKind.FULL_SPEED: T0 + dt.timedelta(hours=3),
        MilestoneKind.HALF_EVENTS: T0 + dt.timedelta(hours=4),
        MilestoneKind.ALL_EVENTS: T0 + dt.timedelta(hours=5),
    }


def test_requests_have_no_full_speed_and_small_campaigns_reach_it_with_their_jobs():
    request_level = ms.State(T0, True, 500, 0, 1000, slots=0)
    assert MilestoneKind.FULL_SPEED not in ms.reached(request_level)
    # A campaign of 5 jobs on 1000 slots is allotted 5: 4 running is full speed.
    small = ms.State(T0, True, 4, 0, 1000, slots=5)
    assert MilestoneKind.FULL_SPEED in ms.reached(small)


def test_the_seed_round_full_speed_by_day_two_half_done_after_two_and_a_half(experiment, operator):
    """Snapshots every 6 h of a round that ramps up to its 20 slots over two days."""
    campaign = planned_campaign(experiment, operator, events=10_000, per_job=100)
    campaign = launch(campaign, operator, at=T0)
    target = 10_000
    shape = dict(seed_shape(T0, target, hours=4 * 24, step_h=6))
    for at, done in sorted(shape.items()):
        days = (at - T0) / dt.timedelta(days=1)
        running = round(20 * min(days / 2, 1.0)) if done < target else 0
        set_progress(campaign, done / target, running=running)
        record_snapshots(now=at)
    views = {m.kind: m for m in ms.views(ms.load(campaign), campaign.launched_at, True)}
    day = dt.timedelta(days=1)
    assert views[MilestoneKind.FIRST_RUNNING].since_launch == dt.timedelta(hours=6)
    # 80% of 20 slots is 16 running, reached at day 1.6: the snapshot of day 1.75.
    assert views[MilestoneKind.FULL_SPEED].since_launch <= 2 * day
    assert views[MilestoneKind.FULL_SPEED].since_launch == dt.timedelta(hours=42)
    assert views[MilestoneKind.HALF_EVENTS].since_launch == 2.5 * day
    assert views[MilestoneKind.ALL_EVENTS].since_launch == 4 * day
    # The request's milestones too (no full speed at request level).
    request_kinds = set(
        Milestone.objects.filter(campaign=campaign, request__isnull=False).values_list(
            "kind", flat=True
        )
    )
    assert request_kinds == {
        MilestoneKind.FIRST_RUNNING,
        MilestoneKind.HALF_EVENTS,
        MilestoneKind.ALL_EVENTS,
    }


def test_a_milestone_is_recorded_once(experiment, operator):
    campaign = launch(planned_campaign(experiment, operator), operator, at=T0)
    set_progress(campaign, 0.6, running=2)
    record_snapshots(now=T0 + dt.timedelta(hours=1))
    record_snapshots(now=T0 + dt.timedelta(hours=2))
    half = Milestone.objects.get(campaign=campaign, request=None, kind=MilestoneKind.HALF_EVENTS)
    assert half.reached_at == T0 + dt.timedelta(hours=1)
    assert Milestone.objects.filter(campaign=campaign, kind=MilestoneKind.HALF_EVENTS).count() == 2

"""Milestones of a production round, derived from its snapshots.

* first job running: the first snapshot in which a job ran or had finished;
* full speed: the first in which running jobs reached ``OPOS_FULL_SPEED_FRACTION``
  (80%) of the campaign's allotted slots (its share of capacity, quota and
  throttle, at most its number of jobs); campaign level only;
* 50% and 100% of the events through the last stage.

``reached`` decides from one snapshot, ``derive`` over a history (tests, backfill);
``record_snapshots`` stores each milestone the first time a snapshot reaches it, so
thinning never blurs it. Elapsed times count from the campaign's launch.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass

from campaigns.models import Campaign

from .. import conf
from ..choices import MilestoneKind
from ..models import Milestone


@dataclass(frozen=True, slots=True)
class State:
    """What a snapshot says, as far as milestones care."""

    at: dt.datetime
    started: bool
    running: int
    events_done: int
    events_target: int
    slots: int = 0  # 0: no full-speed milestone (request level)


def reached(state: State, fraction: float | None = None) -> set[str]:
    """The milestones this state has reached."""
    fraction = conf.full_speed_fraction() if fraction is None else fraction
    kinds: set[str] = set()
    if state.started or state.events_done > 0:
        kinds.add(MilestoneKind.FIRST_RUNNING)
    if state.slots > 0 and state.running >= max(math.ceil(fraction * state.slots), 1):
        kinds.add(MilestoneKind.FULL_SPEED)
    if state.events_target > 0:
        if 2 * state.events_done >= state.events_target:
            kinds.add(MilestoneKind.HALF_EVENTS)
        if state.events_done >= state.events_target:
            kinds.add(MilestoneKind.ALL_EVENTS)
    return kinds


def derive(history: Iterable[State], fraction: float | None = None) -> dict[str, dt.datetime]:
    """When each milestone was first reached in a history of states."""
    first: dict[str, dt.datetime] = {}
    for state in sorted(history, key=lambda s: s.at):
        for kind in reached(state, fraction):
            first.setdefault(kind, state.at)
    return first


@dataclass
class MilestoneView:
    """A milestone for display: when, and how long after the launch."""

    kind: str
    at: dt.datetime | None
    since_launch: dt.timedelta | None

    @property
    def label(self) -> str:
        return MilestoneKind(self.kind).label

    @property
    def elapsed_s(self) -> int | None:
        return int(self.since_launch.total_seconds()) if self.since_launch is not None else None


def views(
    reached_at: dict[str, dt.datetime], launched_at: dt.datetime | None, campaign_level: bool
) -> list[MilestoneView]:
    """Every milestone in order, reached or not (``at`` None), with the time since launch."""
    out = []
    for kind in MilestoneKind.values:
        if kind == MilestoneKind.FULL_SPEED and not campaign_level:
            continue
        at = reached_at.get(kind)
        since = at - launched_at if at and launched_at and at >= launched_at else None
        out.append(MilestoneView(kind, at, since))
    return out


def load(campaign: Campaign, request_id: int | None = None) -> dict[str, dt.datetime]:
    """The recorded milestones of a campaign (or of one of its requests): one query."""
    rows = Milestone.objects.filter(campaign=campaign, request_id=request_id)
    return {kind: at for kind, at in rows.values_list("kind", "reached_at")}


def load_many(campaign_ids: Iterable[int]) -> dict[int, dict[str, dt.datetime]]:
    """Campaign-level milestones of many campaigns: one query."""
    result: dict[int, dict[str, dt.datetime]] = {}
    for cid, kind, at in Milestone.objects.filter(
        campaign_id__in=list(campaign_ids), request__isnull=True
    ).values_list("campaign_id", "kind", "reached_at"):
        result.setdefault(cid, {})[kind] = at
    return result

"""Choice sets of the read side."""

from django.db import models


class ProgressStatus(models.TextChoices):
    """Where work stands against its deadline (what the badges and the API say).

    From the forecast band: on track when even the slow end meets the deadline,
    at risk when only the fast end does, late when neither. ``done`` and
    ``on_hold`` override the band; ``blocked`` is work left that will not run
    again without an operator (every remaining job gave up, or its campaign's
    scheduling raised): no ETA, the reason instead; ``unknown`` is work that will
    not run (cancelled) or has nothing to forecast from yet.
    """

    ON_TRACK = "on_track", "On track"
    AT_RISK = "at_risk", "At risk"
    LATE = "late", "Late"
    DONE = "done", "Done"
    ON_HOLD = "on_hold", "On hold"
    BLOCKED = "blocked", "Blocked"
    UNKNOWN = "unknown", "Unknown"


# Most worrying first: the operator overview orders campaigns by this.
STATUS_RISK = {
    ProgressStatus.BLOCKED: 0,
    ProgressStatus.LATE: 1,
    ProgressStatus.AT_RISK: 2,
    ProgressStatus.ON_HOLD: 3,
    ProgressStatus.UNKNOWN: 4,
    ProgressStatus.ON_TRACK: 5,
    ProgressStatus.DONE: 6,
}
# Badge class (opos.css) of each status.
STATUS_BADGE = {
    ProgressStatus.ON_TRACK: "ok",
    ProgressStatus.AT_RISK: "warn",
    ProgressStatus.LATE: "bad",
    ProgressStatus.DONE: "ok",
    ProgressStatus.ON_HOLD: "bad",
    ProgressStatus.BLOCKED: "bad",
    ProgressStatus.UNKNOWN: "info",
}


class ForecastBasis(models.TextChoices):
    """What an ETA was computed from."""

    MEASURED = "measured", "Measured throughput"
    ESTIMATE = "estimate", "Scheduler's estimate"
    NONE = "none", "No forecast"


class SnapshotLevel(models.TextChoices):
    """Which series a snapshot belongs to."""

    CAMPAIGN = "campaign", "Campaign"
    REQUEST = "request", "Request"
    SAMPLE = "sample", "Sample"


class SnapshotTier(models.IntegerChoices):
    """How thinned a snapshot is: all of the last 48 h, hourly for 30 days, daily after."""

    RAW = 0, "Raw"
    HOURLY = 1, "Hourly"
    DAILY = 2, "Daily"


class MilestoneKind(models.TextChoices):
    """Milestones of a production round (the seed: full speed by day two, half done by 2.5)."""

    FIRST_RUNNING = "first_running", "First job running"
    FULL_SPEED = "full_speed", "Full speed"
    HALF_EVENTS = "half_events", "50% of events"
    ALL_EVENTS = "all_events", "100% of events"


class CommitmentStatus(models.TextChoices):
    """Where a promised milestone stands: against its actual date once reached, else
    against its forecast (``at_risk``: forecast after the promise; ``missed``: the
    promised moment passed without it, or it was reached late)."""

    ON_TRACK = "on_track", "On track"
    AT_RISK = "at_risk", "At risk"
    MISSED = "missed", "Missed"
    MET = "met", "Met"
    UNKNOWN = "unknown", "No forecast"


COMMITMENT_BADGE = {
    CommitmentStatus.ON_TRACK: "ok",
    CommitmentStatus.AT_RISK: "warn",
    CommitmentStatus.MISSED: "bad",
    CommitmentStatus.MET: "ok",
    CommitmentStatus.UNKNOWN: "info",
}
# Statuses whose arrival is announced (operators, requester, watchers, the ticket).
ANNOUNCED_COMMITMENT_STATUSES = (CommitmentStatus.AT_RISK, CommitmentStatus.MISSED)

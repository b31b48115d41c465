"""Choice sets of the intake domain, with their named groups."""

from django.db import models


class Priority(models.TextChoices):
    """Request priority; ``weight`` orders the triage queue."""

    LOW = "low", "Low"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


PRIORITY_WEIGHT = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.CRITICAL: 3}


class RequestState(models.TextChoices):
    """Life cycle of a production request (see ``requests_app.workflow``)."""

    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    NEEDS_INFO = "needs_info", "Needs information"
    APPROVED = "approved", "Approved"
    SCHEDULED = "scheduled", "Scheduled"
    IN_PRODUCTION = "in_production", "In production"
    ON_HOLD = "on_hold", "On hold"
    COMPLETED = "completed", "Completed"
    CLOSED = "closed", "Closed"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


# The groups of request states. Every list of states elsewhere is one of these (or made of
# them), so a new state is placed here once and every reader follows.
S = RequestState

# States in which a liaison may still edit the request freely.
EDITABLE_STATES = frozenset({S.DRAFT, S.NEEDS_INFO})
# States waiting for an operator's decision (the triage queue's bell).
AWAITING_OPERATOR = frozenset({S.SUBMITTED})
# States of a filed request still in triage: waiting for a decision or for the liaison's
# answer (what the triage list shows unless other states are chosen).
IN_TRIAGE_STATES = AWAITING_OPERATOR | {S.NEEDS_INFO}
# States of a request nobody has approved yet (drafts included): no forecast is shown.
UNDECIDED_STATES = IN_TRIAGE_STATES | {S.DRAFT}
# States of a request that asked for work but is in no campaign yet.
UNSCHEDULED_STATES = IN_TRIAGE_STATES | {S.APPROVED}
# States of a request whose samples are in a campaign and may run (not held, not done).
IN_CAMPAIGN_STATES = frozenset({S.SCHEDULED, S.IN_PRODUCTION})
# States in which work is, or is about to be, under way (a request may be promised).
ACTIVE_STATES = frozenset({S.APPROVED, S.ON_HOLD}) | IN_CAMPAIGN_STATES
# Open: filed and not finished (what an experiment's overview lists).
OPEN_STATES = UNSCHEDULED_STATES | ACTIVE_STATES
# States whose work is done and delivered: complete, or complete and closed.
DELIVERED_STATES = frozenset({S.COMPLETED, S.CLOSED})
# States whose work will never run: dropped by the experiment or refused by an operator.
DROPPED_STATES = frozenset({S.CANCELLED, S.REJECTED})
# Finished for execution: nothing more of the request runs (delivered, or cancelled once
# its work may have started; a rejected request never had any).
FINISHED_STATES = DELIVERED_STATES | {S.CANCELLED}
# States whose jobs are not submitted nor retried: a blocker is being solved, the request
# was dropped, or it was completed with the rest abandoned (force-complete).
WORK_HELD_STATES = FINISHED_STATES | {S.ON_HOLD}
# States that end the request's life: no action leads out of them.
TERMINAL_STATES = DROPPED_STATES | {S.CLOSED}

del S

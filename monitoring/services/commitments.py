"""Commitments: the milestones promised to an experiment, kept against what happens.

At a request's approval or a campaign's launch the tracker *proposes* a date for each
milestone (first job running, full speed for a campaign, 50% and 100% of the events)
from its forecast; an operator confirms or edits them (``confirm``). A promise changes
only with a reason (``change``), each change kept. Pages *judge* each promise against
the milestone's actual date once reached, else against its forecast (``judge``); the
beat task ``check`` stores the judged status and announces, once per change, those that
became at risk or missed: one email to the operators, a note of the tracker on the
request(s) concerned (their requester, watchers and assignee by email, and a work note
on the service-desk ticket).

Proposal rule (the operator edits what does not suit): start two hours after the
approval or launch (``OPOS_COMMITMENT_START_LAG_S``); 100% at the slow end of the
forecast band (else its central ETA, else the deadline); full speed a quarter of the
way from start to finish (a day at most), 50% half-way; all rounded up to the hour.

The forecast of a milestone not reached yet: 100% is the forecast's ETA; 50% is when
the current pace reaches half the events (before any throughput, half-way from now to
the estimated finish); first job running and full speed are "now" while the work has a
forecast at all (it is scheduled and runs or may run), else unknown. Work on hold or
blocked puts every open promise at risk.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns.choices import CLOSED_CAMPAIGN_STATES
from campaigns.execution.announcements import announce
from campaigns.models import Campaign, CampaignRequest, Stage
from experiments.models.visibility import is_operator
from experiments.services.audit import record
from requests_app.choices import ACTIVE_STATES
from requests_app.models import ProductionRequest

from ..choices import (
    ANNOUNCED_COMMITMENT_STATUSES,
    COMMITMENT_BADGE,
    CommitmentStatus,
    MilestoneKind,
    ProgressStatus,
)
from ..models import Commitment, CommitmentChange, Milestone
from . import sla
from .forecast import Forecast
from .progress import Progress

log = logging.getLogger(__name__)

HOUR = dt.timedelta(hours=1)
REQUEST_KINDS = (MilestoneKind.FIRST_RUNNING, MilestoneKind.HALF_EVENTS, MilestoneKind.ALL_EVENTS)
CAMPAIGN_KINDS = tuple(MilestoneKind.values)
# Short names, as a promise is said: "50 %: promised Dec 2 12:00, ...".
SHORT = {
    MilestoneKind.FIRST_RUNNING: "start",
    MilestoneKind.FULL_SPEED: "full speed",
    MilestoneKind.HALF_EVENTS: "50 %",
    MilestoneKind.ALL_EVENTS: "100 %",
}
STALLED = (ProgressStatus.ON_HOLD, ProgressStatus.BLOCKED)


class CommitmentError(Exception):
    """A refused confirmation or change: ``detail`` says what is wrong."""

    def __init__(self, detail: str, kind: str = "invalid") -> None:
        super().__init__(detail)
        self.detail = detail
        self.kind = kind  # "invalid", "forbidden", "conflict"


def start_lag() -> dt.timedelta:
    return dt.timedelta(seconds=int(getattr(settings, "OPOS_COMMITMENT_START_LAG_S", 7200)))


def _hour_up(moment: dt.datetime) -> dt.datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + HOUR


# --- proposing ----------------------------------------------------------------------------------


def propose(
    kinds: Iterable[str],
    now: dt.datetime,
    forecast: Forecast,
    reached: Mapping[str, dt.datetime] | None = None,
) -> dict[str, dt.datetime]:
    """Proposed moments of ``kinds`` from a forecast (see the module's rule); a milestone
    already reached is proposed at its actual moment."""
    reached = reached or {}
    start = reached.get(MilestoneKind.FIRST_RUNNING) or _hour_up(now + start_lag())
    finish = forecast.eta_high or forecast.eta or forecast.deadline
    finish = _hour_up(max(finish, start + HOUR))
    span = finish - start
    planned = {
        MilestoneKind.FIRST_RUNNING: start,
        MilestoneKind.FULL_SPEED: _hour_up(start + min(span / 4, dt.timedelta(days=1))),
        MilestoneKind.HALF_EVENTS: _hour_up(start + span / 2),
        MilestoneKind.ALL_EVENTS: finish,
    }
    return {kind: reached.get(kind, planned[kind]) for kind in kinds}


def _detail(target: ProductionRequest | Campaign):
    from . import dashboards  # dashboards imports this module: at call time

    if isinstance(target, Campaign):
        return dashboards.campaign_detail(target, triage=False, full=False)
    return dashboards.request_detail(target, timeline=False, full=False)


def kinds_of(target: ProductionRequest | Campaign) -> tuple[str, ...]:
    return CAMPAIGN_KINDS if isinstance(target, Campaign) else REQUEST_KINDS


def proposal(
    target: ProductionRequest | Campaign, now: dt.datetime | None = None
) -> dict[str, dt.datetime]:
    """The tracker's proposal for a request or a campaign, from its current forecast."""
    now = now or timezone.now()
    detail = _detail(target)
    reached = {m.kind: m.at for m in detail.milestones if m.at}
    return propose(kinds_of(target), now, detail.forecast, reached)


# --- judging ------------------------------------------------------------------------------------


def milestone_forecast(
    kind: str, forecast: Forecast, progress: Progress, now: dt.datetime
) -> dt.datetime | None:
    """When a milestone not reached yet is expected (see the module's docstring)."""
    if forecast.status in STALLED or forecast.status == ProgressStatus.UNKNOWN:
        return None
    if kind == MilestoneKind.ALL_EVENTS:
        return forecast.eta
    if kind == MilestoneKind.HALF_EVENTS:
        half = math.ceil(progress.events_target / 2)
        if forecast.throughput_per_hour:
            left = max(half - progress.events_done, 0)
            return now + dt.timedelta(hours=left / forecast.throughput_per_hour)
        return now + (forecast.eta - now) / 2 if forecast.eta and forecast.eta > now else None
    return now if forecast.eta is not None else None


def judge(
    promised: dt.datetime,
    actual: dt.datetime | None,
    expected: dt.datetime | None,
    now: dt.datetime,
    stalled: bool = False,
) -> str:
    """The status of one promise: met or missed once reached; missed once its moment
    passed; at risk when stalled or expected after it; unknown without a forecast."""
    if actual is not None:
        return CommitmentStatus.MET if actual <= promised else CommitmentStatus.MISSED
    if now > promised:
        return CommitmentStatus.MISSED
    if stalled:
        return CommitmentStatus.AT_RISK
    if expected is None:
        return CommitmentStatus.UNKNOWN
    return CommitmentStatus.AT_RISK if expected > promised else CommitmentStatus.ON_TRACK


def _short_when(moment: dt.datetime) -> str:
    local = timezone.localtime(moment)
    return f"{local:%b} {local.day} {local:%H:%M}"


@dataclass
class CommitmentRow:
    """A promise for display: promised, actual or forecast, and the status they give."""

    commitment: Commitment
    actual: dt.datetime | None
    expected: dt.datetime | None
    status: str

    @property
    def kind(self) -> str:
        return self.commitment.kind

    @property
    def label(self) -> str:
        return SHORT[self.kind]

    @property
    def promised_at(self) -> dt.datetime:
        return self.commitment.promised_at

    @property
    def status_label(self) -> str:
        return CommitmentStatus(self.status).label

    @property
    def badge(self) -> str:
        return COMMITMENT_BADGE.get(self.status, "info")

    @property
    def delta(self) -> dt.timedelta | None:
        """Actual (else forecast) minus promised: positive is late."""
        other = self.actual or self.expected
        return other - self.promised_at if other else None

    @property
    def text(self) -> str:
        """ "50 %: promised Dec 2 12:00, forecast Dec 3 04:00, at risk"."""
        parts = [f"{self.label}: promised {_short_when(self.promised_at)}"]
        if self.actual:
            parts.append(f"reached {_short_when(self.actual)}")
        elif self.expected:
            parts.append(f"forecast {_short_when(self.expected)}")
        else:
            parts.append("no forecast")
        parts.append(self.status_label.lower())
        return ", ".join(parts)

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "label": self.label,
            "promised_at": self.promised_at,
            "actual_at": self.actual,
            "forecast_at": self.expected,
            "status": self.status,
            "text": self.text,
            "confirmed_by": (
                self.commitment.confirmed_by.get_username()
                if self.commitment.confirmed_by
                else None
            ),
            "confirmed_at": self.commitment.confirmed_at,
        }


def rows(
    commitments: Iterable[Commitment],
    forecast: Forecast,
    progress: Progress,
    reached: Mapping[str, dt.datetime],
    now: dt.datetime,
) -> list[CommitmentRow]:
    """Judge the promises of one request or campaign (no query)."""
    out = []
    stalled = forecast.status in STALLED
    for c in sorted(commitments, key=lambda c: CAMPAIGN_KINDS.index(c.kind)):
        actual = reached.get(c.kind)
        expected = None if actual else milestone_forecast(c.kind, forecast, progress, now)
        out.append(
            CommitmentRow(c, actual, expected, judge(c.promised_at, actual, expected, now, stalled))
        )
    return out


def of_campaign(campaign_id: int) -> list[Commitment]:
    return list(Commitment.objects.filter(campaign_id=campaign_id).select_related("confirmed_by"))


def of_request(request_id: int) -> list[Commitment]:
    return list(Commitment.objects.filter(request_id=request_id).select_related("confirmed_by"))


def attach(tracked: Iterable, now: dt.datetime) -> None:
    """Judged promises on overview rows (``tracking.Tracked``) as ``row.commitments``:
    two queries for all of them (the promises, the milestones reached)."""
    tracked = list(tracked)
    campaign_ids = [t.obj.pk for t in tracked if t.kind == "campaign"]
    request_ids = [t.obj.pk for t in tracked if t.kind == "request"]
    by_campaign: dict[int, list[Commitment]] = defaultdict(list)
    by_request: dict[int, list[Commitment]] = defaultdict(list)
    for c in Commitment.objects.filter(campaign_id__in=campaign_ids).select_related(
        "confirmed_by"
    ) | Commitment.objects.filter(request_id__in=request_ids).select_related("confirmed_by"):
        (by_campaign[c.campaign_id] if c.campaign_id else by_request[c.request_id]).append(c)
    wanted_c = set(by_campaign)
    wanted_r = set(by_request)
    reached_c: dict[int, dict[str, dt.datetime]] = defaultdict(dict)
    reached_r: dict[int, dict[str, dt.datetime]] = defaultdict(dict)
    if wanted_c or wanted_r:
        milestones = Milestone.objects.filter(
            campaign_id__in=wanted_c, request__isnull=True
        ) | Milestone.objects.filter(request_id__in=wanted_r)
        for cid, rid, kind, at in milestones.values_list(
            "campaign_id", "request_id", "kind", "reached_at"
        ):
            (reached_r[rid] if rid else reached_c[cid])[kind] = at
    for t in tracked:
        if t.kind == "campaign":
            promised, reached = by_campaign.get(t.obj.pk, []), reached_c.get(t.obj.pk, {})
        else:
            promised, reached = by_request.get(t.obj.pk, []), reached_r.get(t.obj.pk, {})
        t.commitments = rows(promised, t.forecast, t.progress, reached, now) if promised else []


def worst(commitment_rows: Iterable[CommitmentRow]) -> CommitmentRow | None:
    """The promise to look at first: missed, at risk, unknown, on track, met."""
    order = {
        CommitmentStatus.MISSED: 0,
        CommitmentStatus.AT_RISK: 1,
        CommitmentStatus.UNKNOWN: 2,
        CommitmentStatus.ON_TRACK: 3,
        CommitmentStatus.MET: 4,
    }
    return min(commitment_rows, key=lambda r: (order[r.status], r.promised_at), default=None)


# --- confirming and changing --------------------------------------------------------------------


def _check_order(moments: Mapping[str, dt.datetime]) -> None:
    """Start, full speed, 50% and 100% in that order (equal moments allowed)."""
    ordered = [(k, moments[k]) for k in CAMPAIGN_KINDS if k in moments]
    errors = {}
    for (k1, m1), (k2, m2) in itertools.pairwise(ordered):
        if m2 < m1:
            errors[k2] = [f"{SHORT[k2]} cannot be promised before {SHORT[k1]} ({_short_when(m1)})"]
    if errors:
        raise ValidationError(errors)


def _target_fields(target: ProductionRequest | Campaign) -> dict:
    if isinstance(target, Campaign):
        return {"campaign": target, "experiment_id": target.experiment_id}
    return {"request": target, "experiment_id": target.experiment_id}


def _name(target: ProductionRequest | Campaign) -> str:
    return f"campaign {target.name}" if isinstance(target, Campaign) else target.number


def _check_promisable(target: ProductionRequest | Campaign, user: AbstractBaseUser) -> None:
    if not is_operator(user):
        raise CommitmentError("Only OPOS operators record commitments.", "forbidden")
    target.refresh_from_db(fields=["state"])  # judged on its state now, not as loaded
    if isinstance(target, Campaign):
        if target.state in CLOSED_CAMPAIGN_STATES:
            raise CommitmentError(f"{_name(target)} is {target.state}: nothing left to promise.")
    elif target.state not in ACTIVE_STATES:
        raise CommitmentError(
            f"{target.number} is {target.get_state_display().lower()}: commitments are "
            "made once it is approved and while it may still run."
        )


def confirm(
    target: ProductionRequest | Campaign,
    user: AbstractBaseUser,
    moments: Mapping[str, dt.datetime],
    proposed: Mapping[str, dt.datetime] | None = None,
    now: dt.datetime | None = None,
) -> list[Commitment]:
    """Record the commitments of a request or a campaign (the first time): every kind it
    has, each moment as the operator confirmed or edited it. Atomic and audited."""
    now = now or timezone.now()
    _check_promisable(target, user)
    kinds = kinds_of(target)
    missing = [SHORT[k] for k in kinds if moments.get(k) is None]
    if missing:
        raise ValidationError({"__all__": [f"a date is required for: {', '.join(missing)}"]})
    unknown = sorted(set(moments) - set(kinds))
    if unknown:
        raise ValidationError({"__all__": [f"not a commitment of {_name(target)}: {unknown}"]})
    _check_order(moments)
    proposed = proposed or {}
    taken = CommitmentError(
        f"{_name(target)} already has commitments: change them with a reason.", "conflict"
    )
    try:
        return _confirm(target, user, moments, proposed, now, kinds, taken)
    except IntegrityError:  # another operator confirmed at the same moment: theirs stands
        raise taken from None


def _confirm(target, user, moments, proposed, now, kinds, taken) -> list[Commitment]:
    with transaction.atomic():
        if Commitment.objects.filter(**_target_fields(target)).exists():
            raise taken
        made = Commitment.objects.bulk_create(
            [
                Commitment(
                    **_target_fields(target),
                    kind=k,
                    promised_at=moments[k],
                    proposed_at=proposed.get(k),
                    confirmed_by=user,
                    confirmed_at=now,
                )
                for k in kinds
            ]
        )
        record(
            "commitments_confirmed",
            _name(target),
            user,
            target.experiment,
            promised={k: moments[k].isoformat() for k in kinds},
            proposed={k: v.isoformat() for k, v in proposed.items()},
        )
    return made


def change(
    commitment: Commitment,
    user: AbstractBaseUser,
    promised_at: dt.datetime,
    reason: str,
) -> Commitment:
    """Move one promise, with a reason (kept in its history). Atomic and audited; the
    status is judged again by the next check (and announced if it changed)."""
    reason = (reason or "").strip()
    target = commitment.campaign or commitment.request
    _check_promisable(target, user)
    if not reason:
        raise ValidationError({"reason": ["a reason is required to change a commitment"]})
    with transaction.atomic():
        locked = Commitment.objects.select_for_update().get(pk=commitment.pk)
        if locked.promised_at == promised_at:
            raise ValidationError({locked.kind: [f"{SHORT[locked.kind]} is already promised then"]})
        siblings = Commitment.objects.filter(
            campaign_id=locked.campaign_id, request_id=locked.request_id
        ).exclude(pk=locked.pk)
        _check_order(
            {**dict(siblings.values_list("kind", "promised_at")), locked.kind: promised_at}
        )
        CommitmentChange.objects.create(
            commitment=locked,
            promised_before=locked.promised_at,
            promised_after=promised_at,
            reason=reason[:5000],
            actor=user,
        )
        before = locked.promised_at
        locked.promised_at = promised_at
        locked.save(update_fields=["promised_at"])
        record(
            "commitment_changed",
            f"{SHORT[locked.kind]} of {_name(target)}",
            user,
            target.experiment,
            before=before.isoformat(),
            after=promised_at.isoformat(),
            reason=reason[:500],
        )
    return locked


# --- checking and announcing --------------------------------------------------------------------


@dataclass
class CheckReport:
    checked: int = 0
    changed: int = 0
    announced: int = 0
    lines: list[str] = field(default_factory=list)


def _open_targets() -> tuple[list[Campaign], list[ProductionRequest]]:
    """Campaigns and requests with a promise not settled (met or missed)."""
    settled = [CommitmentStatus.MET, CommitmentStatus.MISSED]
    pending = Commitment.objects.exclude(status__in=settled)
    campaigns = list(
        Campaign.objects.filter(
            pk__in=pending.filter(campaign__isnull=False).values("campaign_id")
        ).select_related("experiment")
    )
    requests = list(
        ProductionRequest.objects.filter(
            pk__in=pending.filter(request__isnull=False).values("request_id")
        ).select_related("experiment")
    )
    return campaigns, requests


def check(now: dt.datetime | None = None) -> CheckReport:
    """Judge every promise not settled yet; store each new status and announce those that
    became at risk or missed, once (a compare-and-set on the stored status: a second
    checker running at once announces nothing)."""
    from .dashboards import _campaign_of  # dashboards imports this module
    from .progress import totals
    from .tracking import Estimates, track_campaigns, track_requests

    now = now or timezone.now()
    report = CheckReport()
    campaigns, requests = _open_targets()
    if not campaigns and not requests:
        return report
    estimates = Estimates()
    c_progress = totals(Stage.objects.filter(campaign__in=[c.pk for c in campaigns]), "campaign_id")
    r_ids = [r.pk for r in requests]
    r_progress = totals(Stage.objects.filter(request_id__in=r_ids), "request_id")
    for r in requests:
        r_progress.setdefault(r.pk, Progress(events_target=r.events_total))
    tracked = track_campaigns(campaigns, c_progress, now, estimates) + track_requests(
        requests, r_progress, _campaign_of(r_ids), now, estimates
    )
    attach(tracked, now)
    for t in tracked:
        for row in t.commitments:
            report.checked += 1
            if row.status == row.commitment.status:
                continue
            if _store(row, t, now):
                report.changed += 1
                if row.status in ANNOUNCED_COMMITMENT_STATUSES:
                    report.announced += 1
                    report.lines.append(row.text)
    return report


def _store(row: CommitmentRow, tracked, now: dt.datetime) -> bool:
    """Store a new status (compare-and-set) and, for at risk or missed, announce it, in
    one transaction: the note is written exactly when the status is."""
    c = row.commitment
    with transaction.atomic():
        won = Commitment.objects.filter(pk=c.pk, status=c.status).update(
            status=row.status, status_changed_at=now
        )
        if not won:
            return False
        target = tracked.obj
        record(
            "commitment_status",
            f"{row.label} of {_name(target)}",
            None,
            target.experiment,
            before=c.status,
            after=row.status,
            text=row.text,
        )
        if row.status in ANNOUNCED_COMMITMENT_STATUSES:
            line = f"Commitment {row.status_label.lower()}: {_name(target)}, {row.text}"
            if isinstance(target, Campaign):
                request_ids = CampaignRequest.objects.filter(campaign=target).values_list(
                    "request_id", flat=True
                )
                announce({rid: [line] for rid in request_ids}, line, {target.pk})
            else:
                campaign = tracked.campaign
                announce({target.pk: [line]}, line, {campaign.pk} if campaign else set())
    c.status = row.status
    return True


def for_request_page(request: ProductionRequest) -> dict:
    """What the intake request page shows (handed to intake by ``monitoring.apps``): its
    promises with the status last judged by the check, and its service-desk clock (two
    queries)."""
    return {
        "commitments": [
            {
                "label": SHORT[c.kind],
                "promised_at": c.promised_at,
                "status": CommitmentStatus(c.status).label,
                "badge": COMMITMENT_BADGE.get(c.status, "info"),
            }
            for c in sorted(of_request(request.pk), key=lambda c: CAMPAIGN_KINDS.index(c.kind))
        ],
        # Steps reached, and the waits that happened (no "on hold: 0 min" on every page).
        "clock": [
            row
            for row in sla.request_clock(request)
            if row.seconds is not None and (row.seconds > 0 or row.target_s is not None)
        ],
    }

"""Status reports per experiment, the progress CSV, and the daily email digest.

A status report covers a period: by default from the end of the last report an
operator issued to the experiment (or a week back) until now. It says what
progressed in that period (from snapshots), each campaign's ETA against its
deadline, blockers (requests on hold, paused campaigns, stuck work) with hold
times, and the top failure classes of the period.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Count, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from campaigns.choices import OPEN_CAMPAIGN_STATES, CampaignEventKind, CampaignState
from campaigns.models import Campaign, CampaignEvent, Job, Stage, StuckFlag, StuckKind
from experiments.models import Experiment
from requests_app.choices import OPEN_STATES, RequestState
from requests_app.models import ProductionRequest, Transition

from ..choices import SnapshotLevel
from ..models import Allocation, DigestPreference, StatusReport
from . import accounting, operations, sla, snapshots
from . import commitments as promises
from .dashboards import (
    ExperimentOverview,
    abandoned_parts,
    experiment_overview,
)
from .forecast import window_start
from .progress import load_breakdown
from .snapshots import record_snapshots
from .tracking import Tracked, launch_point

log = logging.getLogger(__name__)

DEFAULT_PERIOD = dt.timedelta(days=7)


@dataclass
class ReportRow:
    """A campaign or request in a report: its row and what it did in the period."""

    tracked: Tracked
    events_before: int
    campaign_pause: str = ""  # why a paused campaign is paused

    @property
    def gained(self) -> int:
        return max(self.tracked.progress.events_done - self.events_before, 0)

    @property
    def gained_percent(self) -> float:
        target = self.tracked.progress.events_target
        return round(100 * self.gained / target, 1) if target else 0.0


@dataclass
class StatusReportData:
    experiment: Experiment
    since: dt.datetime
    until: dt.datetime
    campaigns: list[ReportRow]
    requests: list[ReportRow]
    on_hold: list[Tracked]
    paused: list[ReportRow]
    stuck_by_campaign: dict[int, int]
    failures: list[operations.FailureGroup]
    completed: list[Transition]
    last_report: StatusReport | None = None
    # Of the requests completed in the period, those completed in part: what is missing.
    partial: list[dict] = field(default_factory=list)
    previous: list[StatusReport] = field(default_factory=list)
    # CPU hours of the attempts that ended in the period, per physics working group, and
    # the experiment's current allocation (monitoring.services.accounting).
    usage_by_group: list[accounting.Usage] = field(default_factory=list)
    allocations: list[accounting.AllocationStatus] = field(default_factory=list)

    @property
    def usage_total(self) -> accounting.Usage:
        return accounting.add_up(self.usage_by_group, "All groups")

    sla: list = field(default_factory=list)  # sla.Aggregate of the last months

    @property
    def events_gained(self) -> int:
        return sum(row.gained for row in self.campaigns)

    @property
    def promised(self) -> list[Tracked]:
        """Campaigns and requests with commitments, to show against actuals."""
        rows = [r.tracked for r in self.campaigns] + [r.tracked for r in self.requests]
        return [t for t in rows if t.commitments]

    @property
    def has_blockers(self) -> bool:
        return bool(self.on_hold or self.paused or self.stuck_by_campaign)


def default_since(experiment: Experiment, now: dt.datetime) -> dt.datetime:
    """Where the next report starts: the end of the last one issued, or a week back."""
    last = StatusReport.objects.filter(experiment=experiment).order_by("-period_end").first()
    return last.period_end if last else now - DEFAULT_PERIOD


def _before(
    level: str, rows: list[Tracked], since: dt.datetime, now: dt.datetime
) -> dict[int, int]:
    """Events each row had done at ``since`` (0 if it started later): one query."""
    span = max((now - since).total_seconds(), 0.0)
    points = snapshots.window_points(level, [r.obj.pk for r in rows], now, [span])
    result = {}
    for r in rows:
        campaign = r.obj if r.kind == "campaign" else r.campaign
        series = points.get(r.obj.pk, []) + launch_point(campaign)
        start = window_start(series, now, span)
        # A series that begins after `since` began from nothing.
        result[r.obj.pk] = start.events if start is not None and start.at <= since else 0
    return result


def status_report(
    experiment: Experiment, since: dt.datetime | None = None, now: dt.datetime | None = None
) -> StatusReportData:
    """The report of ``experiment`` for the period from ``since`` until ``now``."""
    now = now or timezone.now()
    previous = list(StatusReport.objects.filter(experiment=experiment).order_by("-period_end")[:10])
    since = since or (previous[0].period_end if previous else now - DEFAULT_PERIOD)
    overview = experiment_overview(experiment, now)
    campaigns = [
        r
        for r in overview.campaigns
        if r.obj.state in OPEN_CAMPAIGN_STATES or (r.obj.updated and r.obj.updated >= since)
    ]
    c_before = _before(SnapshotLevel.CAMPAIGN, campaigns, since, now)
    scheduled = [r for r in overview.requests if r.campaign is not None]
    r_before = _before(SnapshotLevel.REQUEST, scheduled, since, now)
    pauses: dict[int, str] = {}
    paused_ids = [r.obj.pk for r in campaigns if r.obj.state == CampaignState.PAUSED]
    for cid, reason in (
        CampaignEvent.objects.filter(campaign_id__in=paused_ids, kind=CampaignEventKind.PAUSED)
        .order_by("created", "id")
        .values_list("campaign_id", "reason")
    ):
        pauses[cid] = reason  # the latest pause wins
    campaign_rows = [
        ReportRow(r, c_before.get(r.obj.pk, 0), pauses.get(r.obj.pk, "")) for r in campaigns
    ]
    stuck = dict(
        StuckFlag.objects.open()
        .filter(campaign__experiment=experiment)
        .values("campaign_id")
        .annotate(n=Count("id"))
        .values_list("campaign_id", "n")
    )
    period_jobs = Job.objects.filter(
        stage__campaign__experiment=experiment, finished__gte=since, finished__lte=now
    )
    completed = list(
        Transition.objects.filter(
            request__experiment=experiment,
            to_state=RequestState.COMPLETED,
            created__gte=since,
            created__lte=now,
        )
        .exclude(from_state=RequestState.COMPLETED)
        .select_related("request")
        .order_by("created")
    )
    return StatusReportData(
        experiment=experiment,
        since=since,
        until=now,
        campaigns=campaign_rows,
        requests=[ReportRow(r, r_before.get(r.obj.pk, 0)) for r in overview.requests],
        on_hold=[r for r in overview.requests if r.obj.state == RequestState.ON_HOLD],
        paused=[row for row in campaign_rows if row.tracked.obj.state == CampaignState.PAUSED],
        stuck_by_campaign=stuck,
        failures=operations.failures_by_class(period_jobs, now, examples=0)[:5],
        completed=completed,
        partial=abandoned_parts(sorted({t.request_id for t in completed})),
        last_report=previous[0] if previous else None,
        previous=previous,
        usage_by_group=accounting.usage_between(
            "group", Job.objects.filter(stage__campaign__experiment=experiment), since, now
        ),
        allocations=accounting.allocation_statuses(
            accounting.current_allocations(
                Allocation.objects.filter(experiment=experiment), timezone.localdate(now)
            ),
            Job.objects.filter(stage__campaign__experiment=experiment),
            now,
        ),
        sla=sla.aggregates([experiment], now, months=3)[0],
    )


def issue_report(
    experiment: Experiment, since: dt.datetime, until: dt.datetime, user
) -> StatusReport:
    """Record that the report for this period was issued; the next one starts at its end.

    A snapshot of the experiment's campaigns is taken at the same moment, so the next
    report measures its progress from exactly what this one showed.
    """
    record_snapshots(until, Campaign.objects.filter(experiment=experiment))
    return StatusReport.objects.create(
        experiment=experiment, period_start=since, period_end=until, issued_by=user
    )


# --- CSV -----------------------------------------------------------------------------------------

CSV_HEADER = [
    "level",
    "experiment",
    "campaign",
    "request",
    "sample",
    "stage",
    "events_done",
    "events_target",
    "percent",
    "jobs_total",
    "planned",
    "ready",
    "queued",
    "running",
    "held",
    "succeeded",
    "failed",
    "cancelled",
    "lost",
    "status",
    "basis",
    "eta",
    "eta_low",
    "eta_high",
    "deadline",
    "blocked_reason",
    "commitment_status",
    "commitments",
]


def _cell(value) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _when(value: dt.datetime | None) -> str:
    return timezone.localtime(value).isoformat(timespec="minutes") if value else ""


def _deadline_day(moment: dt.datetime | None) -> str:
    """The deadline as the date the pages show. A forecast holds the instant the deadline
    day ends (midnight after it, in the site's zone); written as that instant it read as
    the next day ("due 2026-12-24" exported as 2026-12-25T00:00+00:00)."""
    if moment is None:
        return ""
    end = timezone.localtime(moment, timezone.get_default_timezone())
    return (end - dt.timedelta(days=1)).date().isoformat()


def progress_csv(overview: ExperimentOverview) -> str:
    """One row per campaign, request, sample and stage of the overview."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    slug = overview.experiment.slug
    campaign_ids = [r.obj.pk for r in overview.campaigns]
    data = load_breakdown(Stage.objects.filter(campaign_id__in=campaign_ids))

    def row(level, campaign, request, sample, stage, p, f=None, promised=()):
        worst = promises.worst(promised)
        jobs = [p.jobs.get(s, 0) for s in CSV_HEADER[10:19]]
        forecast = (
            [
                f.status,
                f.basis,
                _when(f.eta),
                _when(f.eta_low),
                _when(f.eta_high),
                _deadline_day(f.deadline),
            ]
            if f
            else ["", "", "", "", "", ""]
        )
        writer.writerow(
            [
                _cell(v)
                for v in [
                    level,
                    slug,
                    campaign,
                    request,
                    sample,
                    stage,
                    p.events_done,
                    p.events_target,
                    p.percent,
                    p.jobs_total,
                    *jobs,
                    *forecast,
                    f.reason if f else p.blocked_reason,
                    worst.status if worst else "",
                    "; ".join(r.text for r in promised),
                ]
            ]
        )

    for t in overview.campaigns:
        row("campaign", t.obj.name, "", "", "", t.progress, t.forecast, t.commitments)
    names = {r.obj.pk: r.obj.name for r in overview.campaigns}
    for t in overview.requests:
        campaign = t.campaign.name if t.campaign else ""
        row("request", campaign, t.obj.number, "", "", t.progress, t.forecast, t.commitments)
    numbers = {t.obj.pk: t.obj.number for t in overview.requests}
    for sid, p in data.samples.items():
        rid = data.sample_request[sid]
        if rid not in numbers:
            continue
        campaign = names.get(data.sample_campaign[sid], "")
        row("sample", campaign, numbers[rid], data.sample_names[sid], "", p)
        for st in data.stages_of(sid):
            row("stage", campaign, numbers[rid], data.sample_names[sid], st.name, st.progress)
    return out.getvalue()


# --- the daily digest ------------------------------------------------------------------------


@dataclass
class DigestReport:
    sent: int = 0
    skipped: int = 0
    failed: int = 0


def _visible_experiments(user, all_ids: Iterable[int]) -> list[int]:
    return list(
        Experiment.objects.visible_to(user)
        .filter(pk__in=list(all_ids))
        .values_list("pk", flat=True)
    )


def digest_failures(experiment_id: int, now: dt.datetime) -> list[operations.FailureGroup]:
    """The failure classes of an experiment's open campaigns with attempts in the last
    24 h not recovered since, with two examples each (two queries)."""
    jobs = Job.objects.filter(
        stage__campaign__experiment_id=experiment_id,
        stage__campaign__state__in=sorted(OPEN_CAMPAIGN_STATES),
        finished__gte=now - dt.timedelta(days=1),
    )
    return [g for g in operations.failures_by_class(jobs, now, examples=2) if g.last_day][:3]


def digest_stopped(experiment_id: int, limit: int = 20) -> list[StuckFlag]:
    """The experiment's stages that stopped: gave up or stalled, open flags (one query)."""
    return list(
        StuckFlag.objects.open()
        .filter(
            campaign__experiment_id=experiment_id,
            job__isnull=True,
            kind__in=[StuckKind.GAVE_UP, StuckKind.NO_PROGRESS],
        )
        .select_related("campaign", "stage__request")
        .order_by("created", "id")[:limit]
    )


def digest_text(
    overviews: list[ExperimentOverview],
    gained: dict[int, int],
    user,
    failures: dict[int, list[operations.FailureGroup]] | None = None,
    stopped: dict[int, list[StuckFlag]] | None = None,
) -> str:
    """The digest of the experiments a user sees, as plain text; ``failures``: by
    experiment id, the recent failures to name (``digest_failures``); ``stopped``: the
    stages that gave up or stalled (``digest_stopped``)."""
    return render_to_string(
        "monitoring/email/digest.txt",
        {
            "user": user,
            "overviews": overviews,
            "gained": gained,
            "failures": failures or {},
            "stopped": stopped or {},
            "site_url": settings.SITE_URL,
            "digest_url": settings.SITE_URL + reverse("monitoring:digest"),
        },
    )


def send_digests(now: dt.datetime | None = None) -> DigestReport:
    """Send today's digest to every user who opted in and has not had it today.

    Each user's row is claimed with a compare-and-set on ``last_sent_at`` before
    sending, so two runs (a late beat, a retry) never send it twice. An
    experiment's overview is computed once for all its readers.
    """
    now = now or timezone.now()
    report = DigestReport()
    today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    prefs = list(
        DigestPreference.objects.filter(daily=True, user__is_active=True)
        .filter(Q(last_sent_at__isnull=True) | Q(last_sent_at__lt=today))
        .exclude(user__email="")
        .select_related("user")
    )
    if not prefs:
        return report
    # Experiments with something to say: open campaigns or open requests.
    active = set(
        Campaign.objects.filter(state__in=sorted(OPEN_CAMPAIGN_STATES)).values_list(
            "experiment_id", flat=True
        )
    ) | set(
        ProductionRequest.objects.filter(state__in=OPEN_STATES).values_list(
            "experiment_id", flat=True
        )
    )
    overviews: dict[int, ExperimentOverview] = {}
    failures: dict[int, list[operations.FailureGroup]] = {}
    stopped: dict[int, list[StuckFlag]] = {}
    gained: dict[int, int] = {}
    for pref in prefs:
        user = pref.user
        ids = _visible_experiments(user, active)
        for eid in ids:
            if eid not in overviews:
                overviews[eid] = experiment_overview(Experiment.objects.get(pk=eid), now)
                failures[eid] = digest_failures(eid, now)
                stopped[eid] = digest_stopped(eid)
                rows = overviews[eid].campaigns
                before = _before(SnapshotLevel.CAMPAIGN, rows, now - dt.timedelta(days=1), now)
                gained.update(
                    {
                        r.obj.pk: max(r.progress.events_done - before.get(r.obj.pk, 0), 0)
                        for r in rows
                    }
                )
        mine = [
            overviews[eid] for eid in ids if overviews[eid].campaigns or overviews[eid].requests
        ]
        if not mine:
            report.skipped += 1
            continue
        claimed = DigestPreference.objects.filter(
            pk=pref.pk, last_sent_at=pref.last_sent_at
        ).update(last_sent_at=now)
        if not claimed:
            report.skipped += 1
            continue
        try:
            send_mail(
                f"[OPOS] Production progress, {timezone.localtime(now):%Y-%m-%d}",
                digest_text(mine, gained, user, failures, stopped),
                settings.DEFAULT_FROM_EMAIL,
                [user.email],
            )
            report.sent += 1
        except Exception:  # one bad address must not stop the others
            log.exception("digest to %s failed", user.get_username())
            DigestPreference.objects.filter(pk=pref.pk).update(last_sent_at=pref.last_sent_at)
            report.failed += 1
    return report


def set_digest(user, daily: bool) -> DigestPreference:
    """Opt a user in or out of the daily digest."""
    pref, _ = DigestPreference.objects.update_or_create(user=user, defaults={"daily": daily})
    return pref


def digest_enabled(user) -> bool:
    return DigestPreference.objects.filter(user=user, daily=True).exists()

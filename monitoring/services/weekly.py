"""The weekly status report by email: each experiment's report of the last seven days to
the people who follow it.

Who gets it: every user who subscribed (``DigestPreference.weekly``) for each experiment
they may see, and the liaisons of an experiment for theirs unless they opted out (a
liaison answers to the experiment for what was promised). One email per person a week,
holding the report of each of their experiments that had something going on (open
campaigns or requests, or a request completed in the week); the same sections as the
report page (commitments against actuals, the service-desk clock, CPU hours, failures
by class, what is blocked), as HTML with a plain-text part, and a link to the page,
which prints cleanly.

Each user's row is claimed by a compare-and-set on ``weekly_sent_at`` before sending, so
two runs in the same week (a late beat, a retry) never send it twice. Each experiment's
report is computed once for all its readers.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from campaigns.choices import OPEN_CAMPAIGN_STATES
from campaigns.models import Campaign
from experiments.choices import ExperimentRole
from experiments.models import Experiment, Membership
from requests_app.choices import OPEN_STATES, RequestState
from requests_app.models import ProductionRequest, Transition

from ..models import DigestPreference
from . import sla
from .reports import StatusReportData, status_report

log = logging.getLogger(__name__)

PERIOD = dt.timedelta(days=7)


@dataclass
class WeeklyReport:
    sent: int = 0
    skipped: int = 0  # nothing to report to them, or already sent this week
    failed: int = 0


def week_start(now: dt.datetime) -> dt.datetime:
    """Monday 00:00 of ``now``'s week, in the tracker's time zone."""
    local = timezone.localtime(now)
    monday = local - dt.timedelta(days=local.weekday())
    return monday.replace(hour=0, minute=0, second=0, microsecond=0)


def _active_experiments(now: dt.datetime) -> set[int]:
    """Experiments with something to report: open work, or a request completed this week."""
    return (
        set(
            Campaign.objects.filter(state__in=sorted(OPEN_CAMPAIGN_STATES)).values_list(
                "experiment_id", flat=True
            )
        )
        | set(
            ProductionRequest.objects.filter(state__in=OPEN_STATES).values_list(
                "experiment_id", flat=True
            )
        )
        | set(
            Transition.objects.filter(
                to_state=RequestState.COMPLETED, created__gte=now - PERIOD
            ).values_list("request__experiment_id", flat=True)
        )
    )


def recipients(now: dt.datetime) -> dict[int, list[int]]:
    """User id -> the ids of the active experiments whose report they get (six queries
    however many liaisons, plus what each subscriber may see)."""
    active = _active_experiments(now)
    if not active:
        return {}
    chosen = dict(DigestPreference.objects.values_list("user_id", "weekly"))
    wanted: dict[int, set[int]] = defaultdict(set)
    for user_id, experiment_id in Membership.objects.filter(
        role=ExperimentRole.LIAISON, experiment_id__in=active, user__is_active=True
    ).values_list("user_id", "experiment_id"):
        if chosen.get(user_id) is not False:
            wanted[user_id].add(experiment_id)
    subscribers = get_user_model().objects.filter(
        pk__in=[uid for uid, weekly in chosen.items() if weekly], is_active=True
    )
    for user in subscribers:
        wanted[user.pk].update(
            Experiment.objects.visible_to(user).filter(pk__in=active).values_list("pk", flat=True)
        )
    return {uid: sorted(ids) for uid, ids in wanted.items() if ids}


def render_weekly(user, reports: list[StatusReportData]) -> tuple[str, str]:
    """The email's plain text and HTML."""
    context = {
        "user": user,
        "reports": [
            {
                "report": r,
                "url": settings.SITE_URL + reverse("monitoring:report", args=[r.experiment.slug]),
            }
            for r in reports
        ],
        "sla_measures": [(k, label) for k, (label, _t) in sla.MEASURES.items()],
        "sla_labels": {k: label for k, (label, _t) in sla.MEASURES.items()},
        "settings_url": settings.SITE_URL + reverse("monitoring:digest"),
    }
    return (
        render_to_string("monitoring/email/weekly_report.txt", context),
        render_to_string("monitoring/email/weekly_report.html", context),
    )


def send_weekly_reports(now: dt.datetime | None = None) -> WeeklyReport:
    """Send this week's status reports to everyone who gets them and has not had them."""
    now = now or timezone.now()
    result = WeeklyReport()
    wanted = recipients(now)
    if not wanted:
        return result
    start = week_start(now)
    for user_id in wanted:  # liaisons who never chose have no row yet
        DigestPreference.objects.get_or_create(user_id=user_id)
    prefs = list(
        DigestPreference.objects.filter(user_id__in=list(wanted), user__is_active=True)
        .filter(Q(weekly_sent_at__isnull=True) | Q(weekly_sent_at__lt=start))
        .exclude(user__email="")
        .select_related("user")
    )
    result.skipped += len(wanted) - len(prefs)
    experiments = {
        e.pk: e
        for e in Experiment.objects.filter(pk__in={i for ids in wanted.values() for i in ids})
    }
    computed: dict[int, StatusReportData] = {}
    for pref in prefs:
        ids = wanted[pref.user_id]
        for eid in ids:
            if eid not in computed:
                computed[eid] = status_report(experiments[eid], since=now - PERIOD, now=now)
        claimed = DigestPreference.objects.filter(
            pk=pref.pk, weekly_sent_at=pref.weekly_sent_at
        ).update(weekly_sent_at=now)
        if not claimed:  # another run has it
            result.skipped += 1
            continue
        reports = [computed[eid] for eid in ids]
        names = ", ".join(r.experiment.name for r in reports)
        try:
            text, html = render_weekly(pref.user, reports)
            message = EmailMultiAlternatives(
                f"[OPOS] Weekly status report: {names}, week of {start:%Y-%m-%d}",
                text,
                settings.DEFAULT_FROM_EMAIL,
                [pref.user.email],
            )
            message.attach_alternative(html, "text/html")
            message.send()
            result.sent += 1
        except Exception:  # one bad address must not stop the others
            log.exception("weekly report to %s failed", pref.user.get_username())
            DigestPreference.objects.filter(pk=pref.pk).update(weekly_sent_at=pref.weekly_sent_at)
            result.failed += 1
    return result


def set_weekly(user, weekly: bool) -> DigestPreference:
    """Subscribe a user to the weekly report of their experiments, or opt out."""
    pref, _ = DigestPreference.objects.update_or_create(user=user, defaults={"weekly": weekly})
    return pref


def weekly_enabled(user) -> bool:
    """Whether the user gets it: subscribed, or a liaison who has not opted out."""
    chosen = DigestPreference.objects.filter(user=user).values_list("weekly", flat=True).first()
    if chosen is not None:
        return chosen
    return Membership.objects.filter(user=user, role=ExperimentRole.LIAISON).exists()

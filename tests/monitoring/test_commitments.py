"""Commitments: proposed from the forecast at approval and launch, confirmed or edited by
an operator, changed only with a reason, judged against actual or forecast, and
announced once when they become at risk or missed."""

import datetime as dt

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from campaigns.models import CampaignRequest
from experiments.models import AuditEvent
from monitoring.choices import CommitmentStatus, MilestoneKind
from monitoring.models import Commitment, CommitmentChange, Milestone
from monitoring.services import commitments as promises
from monitoring.services.forecast import Forecast
from monitoring.services.progress import Progress
from opos_cli import render
from requests_app.choices import RequestState
from requests_app.models import Comment
from tests.campaigns.factories import code_owner
from tests.decision_pages import decide
from tests.requests_app.builders import make_request, qualify

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
FS, HALF, ALL, START = (
    MilestoneKind.FULL_SPEED,
    MilestoneKind.HALF_EVENTS,
    MilestoneKind.ALL_EVENTS,
    MilestoneKind.FIRST_RUNNING,
)


# --- pure rules ---------------------------------------------------------------------------------


def test_judge_reached_passed_expected_and_stalled():
    promised = T0 + 10 * H
    now = T0
    assert promises.judge(promised, T0 + 9 * H, None, now) == CommitmentStatus.MET
    assert promises.judge(promised, T0 + 11 * H, None, now) == CommitmentStatus.MISSED
    assert promises.judge(promised, None, None, T0 + 11 * H) == CommitmentStatus.MISSED
    assert promises.judge(promised, None, T0 + 12 * H, now) == CommitmentStatus.AT_RISK
    assert promises.judge(promised, None, T0 + 8 * H, now) == CommitmentStatus.ON_TRACK
    assert promises.judge(promised, None, None, now) == CommitmentStatus.UNKNOWN
    assert promises.judge(promised, None, T0 + H, now, stalled=True) == CommitmentStatus.AT_RISK


def test_proposal_orders_the_milestones_from_the_slow_end_of_the_band(settings):
    settings.OPOS_COMMITMENT_START_LAG_S = 7200
    f = Forecast(
        deadline=T0 + 200 * H,
        status="on_track",
        eta=T0 + 90 * H,
        eta_high=T0 + 100 * H + dt.timedelta(seconds=60),
    )
    got = promises.propose(promises.CAMPAIGN_KINDS, T0 + dt.timedelta(minutes=5), f)
    assert got[START] == T0 + 3 * H  # two hours on, up to the hour
    assert got[ALL] == T0 + 101 * H  # the slow end, up to the hour
    assert got[FS] == T0 + 3 * H + dt.timedelta(days=1)  # a quarter of 98 h, a day at most
    assert got[HALF] == T0 + 52 * H
    # A milestone reached is proposed as reached.
    reached = promises.propose([START, ALL], T0, f, {START: T0 - H})
    assert reached[START] == T0 - H


def test_half_way_forecast_uses_the_current_pace():
    f = Forecast(deadline=T0 + 100 * H, status="on_track", eta=T0 + 30 * H)
    f.throughput_per_hour = 100.0
    p = Progress(events_done=2000, events_target=6000)
    assert promises.milestone_forecast(HALF, f, p, T0) == T0 + 10 * H
    assert promises.milestone_forecast(ALL, f, p, T0) == T0 + 30 * H
    held = Forecast(deadline=T0, status="on_hold")
    assert promises.milestone_forecast(ALL, held, p, T0) is None


def test_a_row_says_it_in_words():
    c = Commitment(kind=HALF, promised_at=dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC))
    row = promises.CommitmentRow(
        c, None, dt.datetime(2026, 12, 3, 4, 0, tzinfo=dt.UTC), CommitmentStatus.AT_RISK
    )
    with timezone.override(dt.UTC):
        assert row.text == "50 %: promised Dec 2 12:00, forecast Dec 3 04:00, at risk"
    assert row.delta == 16 * H


# --- confirming at approval and launch ----------------------------------------------------------


def test_approval_leads_to_the_proposal_and_the_operator_confirms_it(
    client, experiment, operator, liaison
):
    qualify(experiment, liaison)
    request = make_request(experiment, liaison, RequestState.SUBMITTED)
    client.force_login(operator)
    answer = decide(client, reverse("monitoring:request_what_if", args=[request.number]))
    url = reverse("monitoring:request_commitments", args=[request.number])
    assert answer.status_code == 302 and answer.url == url
    page = client.get(url)
    assert page.status_code == 200
    assert b"Confirm commitments" in page.content
    form = page.context["form"]
    proposed = {k: form.initial[k] for k in promises.REQUEST_KINDS}
    assert proposed[START] <= proposed[HALF] <= proposed[ALL]
    # The operator moves 100% a day later and confirms.
    edited = dict(proposed)
    edited[ALL] = proposed[ALL] + dt.timedelta(days=1)
    data = {k: timezone.localtime(v).strftime("%Y-%m-%dT%H:%M") for k, v in edited.items()}
    done = client.post(url, data)
    assert done.status_code == 302
    rows = {c.kind: c for c in Commitment.objects.filter(request=request)}
    assert set(rows) == set(promises.REQUEST_KINDS)
    assert rows[ALL].promised_at == edited[ALL].replace(second=0, microsecond=0)
    assert rows[ALL].proposed_at == proposed[ALL]
    assert rows[ALL].confirmed_by == operator
    event = AuditEvent.objects.get(action="commitments_confirmed")
    assert event.actor == operator and event.target == request.number
    # The request's progress page shows them; confirming twice is refused.
    progress = client.get(reverse("monitoring:request", args=[request.number]))
    assert b"Commitments" in progress.content and b"100 %" in progress.content
    again = client.get(url)
    assert b"Why change them?" in again.content


def test_a_change_needs_a_reason_keeps_the_order_and_the_history(client, round_, operator):
    url = reverse("monitoring:campaign_commitments", args=[round_.pk])
    client.force_login(operator)
    proposed = client.get(url).context["form"].initial
    fmt = {k: timezone.localtime(v).strftime("%Y-%m-%dT%H:%M") for k, v in proposed.items()}
    assert client.post(url, fmt).status_code == 302
    assert Commitment.objects.filter(campaign=round_).count() == 4
    later = dict(fmt)
    later[ALL] = timezone.localtime(proposed[ALL] + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    refused = client.post(url, {**later, "reason": ""})
    assert refused.status_code == 400
    assert b"a reason is required" in refused.content
    # 50% after 100% is refused with the milestone named, nothing written.
    wrong = dict(fmt)
    wrong[HALF] = later[ALL]
    wrong[ALL] = fmt[HALF]
    bad = client.post(url, {**wrong, "reason": "swap"})
    assert bad.status_code == 400 and b"cannot be promised before" in bad.content
    assert not CommitmentChange.objects.exists()
    ok = client.post(url, {**later, "reason": "the site is down for two days"})
    assert ok.status_code == 302
    change = CommitmentChange.objects.get()
    assert change.reason == "the site is down for two days" and change.actor == operator
    assert change.promised_after - change.promised_before == dt.timedelta(days=2)
    assert AuditEvent.objects.filter(action="commitment_changed").count() == 1
    assert b"the site is down for two days" in client.get(url).content


def test_only_operators_and_members_see_but_do_not_make_them(client, round_, liaison, physicist):
    url = reverse("monitoring:campaign_commitments", args=[round_.pk])
    client.force_login(liaison)
    assert client.get(url).status_code == 403
    with pytest.raises(promises.CommitmentError):
        promises.confirm(round_, liaison, {k: T0 for k in promises.CAMPAIGN_KINDS})


def test_launch_leads_to_the_commitments_page(client, experiment, operator):
    from .builders import planned_campaign

    campaign = planned_campaign(experiment, operator)
    client.force_login(operator)
    answer = decide(
        client, reverse("monitoring:campaign_what_if", args=[campaign.pk]), {"change": "launch"}
    )
    assert answer.url == reverse("monitoring:campaign_commitments", args=[campaign.pk])


# --- shown everywhere ---------------------------------------------------------------------------


def _promise(round_, operator, **moments):
    """Start and full speed promised and reached in time; 50% at risk; 100% on track."""
    now = timezone.now()
    for kind, after in ((START, H), (FS, 3 * H)):
        Milestone.objects.update_or_create(
            campaign=round_,
            request=None,
            kind=kind,
            defaults={"reached_at": round_.launched_at + after},
        )
    base = {
        START: round_.launched_at + 2 * H,
        FS: round_.launched_at + 6 * H,
        HALF: now + dt.timedelta(hours=1),  # at 100/h, half (3000) comes in ~6 h: at risk
        ALL: now + dt.timedelta(days=4),
    }
    base.update(moments)
    return promises.confirm(round_, operator, base)


def test_api_csv_report_and_cli_show_promise_against_forecast(
    client, api, round_, operator, experiment
):
    _promise(round_, operator)
    data = api(operator).get(f"/api/v1/campaigns/{round_.pk}/progress/").json()
    by_kind = {c["kind"]: c for c in data["commitments"]}
    assert by_kind[HALF]["status"] == "at_risk"
    assert by_kind[HALF]["forecast_at"] and by_kind[HALF]["text"].startswith("50 %: promised")
    assert by_kind[ALL]["status"] == "on_track"
    assert by_kind[START]["actual_at"] is not None
    client.force_login(operator)
    csv = client.get(reverse("monitoring:csv", args=[experiment.slug])).content.decode()
    header, first = csv.splitlines()[:2]
    assert header.endswith("commitment_status,commitments")
    assert "at_risk" in first and "50 %: promised" in first
    report = client.get(reverse("monitoring:report", args=[experiment.slug]))
    assert b"Commitments against actuals" in report.content and b"At risk" in report.content
    text = render.progress({"name": round_.name, "experiment": "dune"}, data)
    assert "promised  start: promised" in text and "reached" in text and "at risk" in text


def test_overviews_show_the_worst_promise(client, round_, operator, experiment):
    _promise(round_, operator)
    client.force_login(operator)
    page = client.get(reverse("monitoring:experiment", args=[experiment.slug]))
    assert b"50 %: promised" in page.content
    ops = client.get(reverse("monitoring:operations"))
    assert b"50 %: promised" in ops.content


# --- announced once -----------------------------------------------------------------------------


def test_check_announces_at_risk_once_then_missed(round_, operator, experiment):
    code_owner(experiment)  # an operator with an email address exists
    _promise(round_, operator)
    request_ids = set(
        CampaignRequest.objects.filter(campaign=round_).values_list("request_id", flat=True)
    )
    mail.outbox.clear()
    first = promises.check()
    assert first.announced == 1 and "50 %" in first.lines[0]
    notes = Comment.objects.filter(author=None, request_id__in=request_ids)
    assert notes.count() == len(request_ids)
    assert all("Commitment at risk" in body for body in notes.values_list("body", flat=True))
    assert Commitment.objects.get(campaign=round_, kind=HALF).status == "at_risk"
    sent = len(mail.outbox)
    assert sent >= 1
    # Nothing changed: nothing said again.
    second = promises.check()
    assert second.announced == 0 and second.changed == 0
    assert notes.count() == len(request_ids) and len(mail.outbox) == sent
    # Its moment passes without it: missed, announced once more.
    later = timezone.now() + dt.timedelta(hours=2)
    third = promises.check(later)
    assert third.announced == 1
    assert Commitment.objects.get(campaign=round_, kind=HALF).status == "missed"
    assert notes.count() == 2 * len(request_ids)
    assert AuditEvent.objects.filter(action="commitment_status").count() >= 2


def test_the_beat_task_runs_the_check(round_, operator):
    from monitoring.tasks import check_commitments_task

    _promise(round_, operator)
    assert check_commitments_task.apply().get()["announced"] == 1


def test_a_second_confirmation_is_refused_as_a_conflict(round_, operator):
    _promise(round_, operator)
    with pytest.raises(promises.CommitmentError) as refused:
        _promise(round_, operator)
    assert refused.value.kind == "conflict"
    assert Commitment.objects.filter(campaign=round_).count() == 4


def test_pages_with_promises_stay_within_their_query_ceilings(
    client, round_, operator, experiment, django_assert_max_num_queries
):
    """Promises on the campaign and on each of its requests add a fixed two queries to an
    overview (the promises, their milestones) and one to a dashboard, whatever their number."""
    from campaigns.models import CampaignRequest as Link

    from .test_query_counts import MAX_QUERIES

    _promise(round_, operator)
    for link in Link.objects.filter(campaign=round_).select_related("request"):
        promises.confirm(
            link.request,
            operator,
            {
                k: timezone.now() + dt.timedelta(hours=i + 1)
                for i, k in enumerate(promises.REQUEST_KINDS)
            },
        )
    client.force_login(operator)
    pages = {
        "experiment": reverse("monitoring:experiment", args=[experiment.slug]),
        "campaign": reverse("monitoring:campaign", args=[round_.pk]),
        "operations": reverse("monitoring:operations"),
        "csv": reverse("monitoring:csv", args=[experiment.slug]),
    }
    for name, url in pages.items():
        with django_assert_max_num_queries(MAX_QUERIES[name]):
            assert client.get(url).status_code == 200


def test_the_request_page_shows_its_promises_and_clock(client, experiment, operator, liaison):
    qualify(experiment, liaison)
    request = make_request(experiment, liaison, RequestState.DRAFT)
    client.force_login(liaison)
    client.post(reverse("requests:action", args=[request.number]), {"action": "submit"})
    client.force_login(operator)
    decide(client, reverse("monitoring:request_what_if", args=[request.number]))
    moments = promises.proposal(request)
    promises.confirm(request, operator, moments)
    client.force_login(liaison)
    page = client.get(reverse("requests:detail", args=[request.number])).content.decode()
    assert "Commitments" in page and "100 %: promised" in page
    assert "Service-desk clock" in page and "First operator response" in page
    assert "Change them" not in page  # the liaison sees, operators change
    assert "Waiting for the liaison" not in page  # it never waited

"""Snapshots: recorded from the stage counters per campaign, request and sample; thinned."""

import datetime as dt

import pytest
from django.utils import timezone

from campaigns.choices import CampaignState, JobState
from campaigns.models import Campaign
from monitoring.choices import SnapshotLevel, SnapshotTier
from monitoring.models import ProgressSnapshot
from monitoring.services import record_snapshots, thin_snapshots
from monitoring.services.snapshots import window_points

from .builders import history, launch, planned_campaign, set_progress

pytestmark = pytest.mark.django_db


def test_running_campaigns_get_a_row_per_campaign_request_and_sample(experiment, operator):
    campaign = launch(planned_campaign(experiment, operator, requests=2, samples=2), operator)
    idle = planned_campaign(experiment, operator, name="not launched")
    set_progress(campaign, 0.5, running=3)
    report = record_snapshots()
    assert report.campaigns == 1
    rows = ProgressSnapshot.objects.filter(campaign=campaign)
    assert rows.filter(level=SnapshotLevel.CAMPAIGN).count() == 1
    assert rows.filter(level=SnapshotLevel.REQUEST).count() == 2
    assert rows.filter(level=SnapshotLevel.SAMPLE).count() == 4
    assert not ProgressSnapshot.objects.filter(campaign=idle).exists()
    top = rows.get(level=SnapshotLevel.CAMPAIGN)
    # Four samples of 1000 events; events count through the last stage only.
    assert (top.events_done, top.events_target) == (2000, 4000)
    # Three running in the first stage of each of the four samples.
    assert top.jobs[JobState.RUNNING] == 12
    assert top.running == 12 and top.in_flight == 12
    assert top.jobs_total == 4 * 25  # 10 generation + 10 simulation + 5 reconstruction
    # Allotted slots: the local backend's capacity (20) is below the quota (500).
    assert top.slots == 20


def test_a_closed_campaign_gets_one_final_snapshot(experiment, operator):
    campaign = launch(planned_campaign(experiment, operator), operator)
    set_progress(campaign, 0.4)
    record_snapshots()
    set_progress(campaign, 1.0)
    Campaign.objects.filter(pk=campaign.pk).update(
        state=CampaignState.COMPLETED, completed_at=timezone.now()
    )
    record_snapshots()
    record_snapshots()  # nothing new after the final point
    series = ProgressSnapshot.objects.filter(campaign=campaign, level=SnapshotLevel.CAMPAIGN)
    assert list(series.values_list("events_done", flat=True)) == [400, 1000]


def test_recording_costs_the_same_queries_whatever_the_plan(
    experiment, operator, django_assert_max_num_queries
):
    for _ in range(3):
        launch(planned_campaign(experiment, operator, requests=3, samples=2), operator)
    with django_assert_max_num_queries(12):
        record_snapshots()


def test_thinning_keeps_48_hours_whole_then_hourly_then_daily(experiment, operator):
    campaign = launch(planned_campaign(experiment, operator), operator)
    now = dt.datetime(2026, 12, 31, 12, 0, tzinfo=dt.UTC)
    # A snapshot every 10 minutes for 40 days.
    start = now - dt.timedelta(days=40)
    points = [(start + dt.timedelta(minutes=10 * i), i) for i in range(40 * 24 * 6)]
    history(campaign, points)
    thin_snapshots(now)
    rows = list(
        ProgressSnapshot.objects.filter(campaign=campaign).values_list(
            "taken_at", "tier", "events_done"
        )
    )
    raw = [r for r in rows if r[1] == SnapshotTier.RAW]
    hourly = [r for r in rows if r[1] == SnapshotTier.HOURLY]
    daily = [r for r in rows if r[1] == SnapshotTier.DAILY]
    # Every row of the last 48 h (from the hour boundary) is still there.
    assert min(r[0] for r in raw) == now - dt.timedelta(hours=48)
    assert len(raw) == 48 * 6
    # One row per hour from the day 30 days back up to 48 h back: the last of each hour.
    hours = {r[0].replace(minute=0) for r in hourly}
    day_30 = (now - dt.timedelta(days=30)).replace(hour=0)
    expected = (now - dt.timedelta(hours=48) - day_30) / dt.timedelta(hours=1)
    assert len(hours) == len(hourly) == expected
    assert all(r[0].minute == 50 for r in hourly)
    # One per day before that.
    days = {r[0].date() for r in daily}
    assert len(days) == len(daily) == 10
    # The cumulative count never goes backwards across the thinned series.
    values = [r[2] for r in sorted(rows)]
    assert values == sorted(values)
    # Repeating changes nothing.
    before = len(rows)
    thin_snapshots(now)
    assert ProgressSnapshot.objects.filter(campaign=campaign).count() == before


def test_thinning_later_moves_rows_on_by_tier(experiment, operator):
    campaign = launch(planned_campaign(experiment, operator), operator)
    now = dt.datetime(2026, 12, 1, 0, 0, tzinfo=dt.UTC)
    history(campaign, [(now - dt.timedelta(hours=47, minutes=m), m) for m in (50, 30, 10)])
    thin_snapshots(now)
    assert ProgressSnapshot.objects.filter(tier=SnapshotTier.RAW).count() == 3
    thin_snapshots(now + dt.timedelta(hours=3))
    kept = ProgressSnapshot.objects.get()
    assert kept.tier == SnapshotTier.HOURLY and kept.events_done == 10


def test_window_points_are_the_snapshots_that_start_each_window(experiment, operator):
    campaign = launch(planned_campaign(experiment, operator), operator)
    now = timezone.now()
    history(campaign, [(now - dt.timedelta(hours=h), 100 * (30 - h)) for h in range(30)])
    points = window_points(SnapshotLevel.CAMPAIGN, [campaign.pk], now)[campaign.pk]
    assert [p.events for p in points] == [100 * 1, 100 * 6, 100 * 24]  # first, 24 h, 6 h

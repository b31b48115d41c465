"""The snapshot history is cached exactly: a new snapshot or a thinning is seen at once,
a cache hit reads no series, and one entry never carries one user's view to another."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from monitoring.choices import SnapshotLevel
from monitoring.models import ProgressSnapshot
from monitoring.services import history as cached
from monitoring.services import record_snapshots, thin_snapshots

from .builders import history, launch, planned_campaign, set_progress

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(experiment, operator):
    """Launched 10 h ago, 400 events an hour since, snapshots every hour."""
    campaign = planned_campaign(experiment, operator, events=10_000, per_job=100, days=10)
    start = timezone.now() - dt.timedelta(hours=10)
    campaign = launch(campaign, operator, at=start)
    history(campaign, [(start + dt.timedelta(hours=h), 400 * h) for h in range(10)])
    set_progress(campaign, 0.4, running=5)
    return campaign


def url(campaign) -> str:
    return f"/api/v1/campaigns/{campaign.pk}/progress/"


def chart_points(client, campaign) -> int:
    """Points of the burn-up's actual path on the dashboard."""
    page = client.get(reverse("monitoring:campaign", args=[campaign.pk])).content.decode()
    return len(re.search(r'class="actual" points="([^"]*)"', page).group(1).split())


def series_reads(queries) -> int:
    """Queries that read the rows of a series (not the aggregate that keys the cache)."""
    table = ProgressSnapshot._meta.db_table
    return sum(
        1
        for q in queries
        if f'FROM "{table}"' in q["sql"] and "events_done" in q["sql"] and "MAX(" not in q["sql"]
    )


def test_a_hit_reads_no_series_and_answers_the_same(api, operator, running):
    client = api(operator)
    with CaptureQueriesContext(connection) as miss:
        first = client.get(url(running)).json()
    with CaptureQueriesContext(connection) as hit:
        second = client.get(url(running)).json()
    assert series_reads(miss.captured_queries) == 1
    assert series_reads(hit.captured_queries) == 0
    assert len(hit.captured_queries) == len(miss.captured_queries) - 1
    assert second["snapshots"] == first["snapshots"]  # (the forecast moves with the clock)
    assert len(first["snapshots"]) == 10


def test_a_new_snapshot_is_seen_at_once(api, operator, running, client):
    client.force_login(operator)
    before = api(operator).get(url(running)).json()
    drawn = chart_points(client, running)
    record_snapshots(now=timezone.now())  # the recorder's next row: 4000 events now

    after = api(operator).get(url(running)).json()
    assert len(after["snapshots"]) == len(before["snapshots"]) + 1
    assert after["snapshots"][-1]["events_done"] == 4000
    assert chart_points(client, running) == drawn + 1  # the burn-up too


def test_thinning_is_seen_at_once(api, operator, running):
    old = (timezone.now() - dt.timedelta(days=5)).replace(minute=0, second=0, microsecond=0)
    history(running, [(old + dt.timedelta(minutes=5 * n), 10 * n) for n in range(12)])
    before = api(operator).get(url(running)).json()["snapshots"]

    report = thin_snapshots()  # the twelve old rows of one hour become one

    assert report.deleted == 11
    after = api(operator).get(url(running)).json()["snapshots"]
    assert len(after) == len(before) - 11


def test_since_filters_the_cached_series(api, operator, running):
    everything = api(operator).get(url(running)).json()["snapshots"]
    cut = everything[4]["taken_at"]
    recent = api(operator).get(url(running), {"since": cut}).json()["snapshots"]
    assert recent == everything[4:]


def test_the_cached_rendering_is_drf_s(running):
    """The API's points come pre-rendered: exactly what the serializer would write."""
    from monitoring.api import SnapshotPointSerializer

    entry = cached.history(SnapshotLevel.CAMPAIGN, running.pk)
    rows = ProgressSnapshot.objects.filter(level=SnapshotLevel.CAMPAIGN, campaign=running)
    expected = SnapshotPointSerializer(
        [
            {"taken_at": s.taken_at, "events_done": s.events_done, "succeeded": s.succeeded}
            for s in rows
        ],
        many=True,
    ).data
    assert entry.api() == [dict(p) for p in expected]


def test_one_entry_serves_everyone_who_may_see_it_and_no_one_else(
    api, operator, liaison, other_liaison, running
):
    assert api(operator).get(url(running)).status_code == 200  # fills the cache
    assert api(liaison).get(url(running)).json()["snapshots"]
    assert api(other_liaison).get(url(running)).status_code == 404

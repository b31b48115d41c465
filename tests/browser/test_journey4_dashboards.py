"""Journey 4: a physicist of the experiment opens the dashboards and sees the progress
bars, the burn-up chart with its deadline (named at the edge of the active window, a line
over the whole span), and the milestones; a physicist of another
experiment sees none of it: not listed anywhere, and a 404 at every address.

The history is constructed (the seed's good round: full speed by day two, half the events
after two and a half days), written as the poller and the snapshot task would have written
it: what a physicist reads after days of production, which a test cannot wait for. Journey
3 is the one where a real worker produces progress.
"""

import datetime as dt

import pytest
from django.utils import timezone

from campaigns.models import Stage
from monitoring.services import record_snapshots
from requests_app.services import system_transition
from tests.monitoring.builders import launch, planned_campaign, seed_shape, set_progress

from .support import press
from .world import build_world

pytestmark = pytest.mark.browser

SLOTS = 20


def good_round(world):
    """MCC5.0 launched 2.5 days ago, half done, due in three days; snapshots every hour."""
    campaign = planned_campaign(
        world.dune,
        world.operator,
        requests=2,
        samples=2,
        events=20_000,
        per_job=500,
        days=3,
        name="MCC5.0 production",
    )
    now = timezone.now()
    start = now - dt.timedelta(days=2.5)
    campaign = launch(campaign, world.operator, at=start)
    for request_id in campaign.links.values_list("request_id", flat=True):
        system_transition(request_id, "start", note="The first job is running.")
    target = 4 * 20_000
    first_stages = Stage.objects.filter(campaign=campaign, position=0).count()
    for at, done in seed_shape(start, target, hours=60, step_h=1.0):
        days = (at - start) / dt.timedelta(days=1)
        running = round(SLOTS * min(days / 2, 1.0)) if done < target else 0
        set_progress(campaign, done / target, running=round(running / first_stages))
        record_snapshots(now=at)
    return campaign


def test_physicists_see_their_experiment_only(journey, settings):
    settings.OPOS_BACKEND_CAPACITY = {"local": SLOTS, "slurm": 1000, "htcondor": 5000}
    settings.OPOS_FORECAST_MIN_SPAN_S = 1800
    world = build_world()
    campaign = good_round(world)
    request = campaign.links.order_by("request_id").first().request

    tab = journey.tab("physicist")
    page = tab.page
    tab.sign_in("phoebe")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Progress").click()
    tab.arrived("experiment")
    assert tab.path() == "/monitoring/experiments/dune/"
    campaigns = page.locator("section", has=page.get_by_role("heading", name="Campaigns"))
    row = campaigns.locator("tbody tr", has_text="MCC5.0 production")
    assert row.locator("svg.bar").count() == 1  # the progress bar
    assert "50.0%" in row.locator("svg.bar").get_attribute("aria-label")
    requests = page.locator("section", has=page.get_by_role("heading", name="Open requests"))
    assert requests.locator("tbody tr", has_text=request.number).locator("svg.bar").count() == 1

    # From the keyboard, while the table refreshes in place every second.
    with page.expect_navigation():
        press(
            page,
            row.get_by_role("link", name="MCC5.0 production"),
            start=page.get_by_role("link", name="Daily digest"),
            slowly=True,
        )
    tab.arrived("campaign")
    chart = page.locator("svg.burnup")
    assert chart.count() == 1
    assert chart.locator("line.target").count() == 1
    assert chart.locator("polyline.actual").count() == 1
    # The active window ends after the projected finish; the deadline, later still, is
    # named at the right edge with its date.
    assert chart.locator("line.deadline").count() == 0
    edge = chart.locator("text.deadline-edge").text_content()
    assert edge.startswith("deadline ") and edge.endswith("→"), edge
    # The whole span, one click away, draws it inside the plot, right of the last point
    # of progress.
    with page.expect_navigation():
        page.get_by_role("link", name="show the whole span").click()
    tab.arrived("campaign, whole span")
    assert tab.path().endswith("?chart=whole")
    chart = page.locator("svg.burnup")
    assert chart.locator("line.deadline").count() == 1
    assert chart.locator("text.deadline-label").text_content() == "deadline"
    deadline_x = float(chart.locator("line.deadline").get_attribute("x1"))
    last_x = float(
        chart.locator("polyline.actual").get_attribute("points").split()[-1].split(",")[0]
    )
    assert last_x < deadline_x
    milestones = page.locator("ol.milestones")
    for reached in ("First job running", "Full speed", "50% of events"):
        item = milestones.locator("li", has_text=reached)
        assert "reached" in item.get_attribute("class"), reached
        assert "after launch" in item.inner_text() or "at launch" in item.inner_text()
    assert "pending" in milestones.locator("li", has_text="100% of events").get_attribute("class")
    assert page.locator(".live svg.bar").count() >= 5  # campaign, requests, stages
    assert page.get_by_role("heading", name="Stuck work").count() == 0  # operators only

    page.get_by_role("link", name=request.number).first.click()
    tab.arrived("request")
    assert page.locator("svg.bar").count() >= 1
    assert page.locator("svg.burnup line.deadline, svg.burnup text.deadline-edge").count() == 1

    # A physicist of SBND: DUNE is nowhere, and every DUNE address answers 404.
    other = journey.tab("physicist of another experiment")
    other.sign_in("sam")
    other.page.get_by_role("navigation", name="Main").get_by_role("link", name="Progress").click()
    other.arrived("own experiment")
    assert other.path() == "/monitoring/experiments/sbnd/"
    for path in ("/monitoring/experiments/sbnd/", "/campaigns/", "/requests/", "/"):
        other.visit(path)
        text = other.page.locator("main").inner_text()
        assert "MCC5.0" not in text and "DUNE" not in text, path
    for path in (
        f"/monitoring/campaigns/{campaign.pk}/",
        f"/monitoring/campaigns/{campaign.pk}/?partial=1",
        f"/monitoring/requests/{request.number}/",
        "/monitoring/experiments/dune/",
        "/monitoring/experiments/dune/report/",
        "/monitoring/experiments/dune/progress.csv",
        f"/campaigns/{campaign.pk}/",
        f"/requests/{request.number}/",
    ):
        other.expect_status(path, 404)
        assert "MCC5.0" not in other.page.content(), path
    other.capture("not found")

    journey.finish()

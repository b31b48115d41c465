"""Journey 2: an operator finds the liaison's request at the top of the triage queue,
rejects a duplicate in bulk (refused without its note, kept as it was, then done),
opens its eligibility checklist, sees what is missing, records the missing training,
approves from the keyboard on the decision page (what the approval does to everyone else,
recorded with it), creates a campaign, schedules the request into it and launches it,
each through its decision page, and sees the deadline forecast."""

import pytest

from campaigns.choices import CampaignState
from campaigns.models import Campaign, Job
from monitoring.models import Commitment
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest, Transition

from .support import press
from .world import build_world, days_ahead, submitted_request

pytestmark = pytest.mark.browser


def test_operator_approves_schedules_and_launches(journey):
    world = build_world()
    # The journey's request has the nearest deadline; others wait behind it.
    submitted_request(world, "Supernova bursts", days=70, priority="critical", group="supernova")
    ours = submitted_request(world, "MCC5.0 oscillation samples", days=45, priority="high")
    duplicate = submitted_request(world, "Cosmogenic backgrounds", days=60)

    tab = journey.tab("operator")
    page = tab.page
    tab.sign_in("olivia")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Triage").click()
    tab.arrived("triage")
    first = page.locator("table tbody tr").first
    assert ours.number in first.inner_text()

    # A bulk Reject without its note does nothing and comes back as it was: the action is
    # still Reject (no action is chosen in advance), the tick still on the request.
    row = page.locator("table tbody tr", has_text=duplicate.number)
    row.get_by_role("checkbox").check()
    page.get_by_label("Action").select_option("reject")
    tab.allowed.add(tab.url("/triage/"))  # the refusal answers 400
    with page.expect_navigation():
        page.get_by_role("button", name="Apply").click()
    tab.arrived()
    assert "A note is required to reject." in page.locator("#bulk-refused").inner_text()
    assert page.get_by_label("Action").input_value() == "reject"
    assert row.get_by_role("checkbox").is_checked()
    tab.capture("triage-refused")
    assert ProductionRequest.objects.get(pk=duplicate.pk).state == RequestState.SUBMITTED
    page.get_by_label("Note").fill("Duplicate of the supernova request.")
    with page.expect_navigation():
        page.get_by_role("button", name="Apply").click()
    tab.arrived()
    assert f"{duplicate.number} rejected" in page.locator(".messages").inner_text()
    assert ProductionRequest.objects.get(pk=duplicate.pk).state == RequestState.REJECTED
    first.get_by_role("link", name=ours.number).click()
    tab.arrived("request")

    # The checklist says what is missing and who can fix it.
    checklist = page.locator("section", has=page.get_by_role("heading", name="Eligibility (SLA)"))
    missing = checklist.locator("li.missing")
    assert missing.count() == 1
    assert "no training recorded on monitoring" in missing.inner_text()
    assert "an operator records the training session" in missing.inner_text()
    # The checklist comes first; Approve cannot be pressed and says why.
    assert page.get_by_role("button", name="Approve…", exact=True).is_disabled()
    blocked = page.locator("#blocked-approve").inner_text()
    assert "no training recorded on monitoring" in blocked
    assert missing.get_by_role("link", name="Record a training session").count() == 1
    tab.capture("request-ineligible")

    # Record the training in the browser.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Training").click()
    tab.arrived("training")
    page.get_by_role("link", name="Record a session").click()
    tab.arrived("record training")
    page.get_by_label("Experiment").select_option(label="DUNE")
    page.get_by_label("Monitoring").check()
    page.get_by_label("olivia").check()
    page.get_by_label("Notes").fill("Dashboards, failure classes and stuck jobs.")
    with page.expect_navigation():
        page.get_by_role("button", name="Record").click()
    tab.arrived()
    assert "Recorded" in page.locator(".messages").inner_text()

    # Back to the request: eligible now; approve from the keyboard.
    page.goto(tab.url(f"/requests/{ours.number}/"))
    tab.arrived()
    assert checklist.locator("li.missing").count() == 0
    page.locator("#note-approve").fill("Oscillation round first.")
    approve = page.get_by_role("button", name="Approve…", exact=True)
    with page.expect_navigation():
        press(page, approve, key="Enter", start=page.locator("#note-approve"))
    # Approve leads to its decision page: the effect on everyone else, nothing changed yet.
    tab.arrived()  # not a main page: revisited at the end it would have nothing to decide
    tab.capture("approval-decision")
    assert "Effect, projected on the live state" in page.locator("main").inner_text()
    assert ProductionRequest.objects.get(pk=ours.pk).state == RequestState.SUBMITTED
    assert page.get_by_label("Note (recorded)").input_value() == "Oscillation round first."
    assert page.get_by_role("link", name="Back to the request, nothing changed").count() == 1
    go = page.get_by_role("button", name=f"Approve {ours.number}")
    with page.expect_navigation():
        press(page, go, key="Enter", start=page.get_by_label("Note (recorded)"))
    tab.arrived("request commitments")
    assert f"{ours.number} is now approved." in page.locator(".messages").inner_text()
    approval = Transition.objects.get(request=ours, action="approve")
    assert approval.note == "Oscillation round first."
    assert "effect_shown" in approval.changes
    assert ProductionRequest.objects.get(pk=ours.pk).state == RequestState.APPROVED
    # The approval leads to the commitments the tracker proposes; the operator confirms.
    assert page.get_by_label("100 % by").input_value()
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm commitments").click()
    tab.arrived()
    assert "Commitments recorded." in page.locator(".messages").inner_text()
    assert Commitment.objects.filter(request=ours).count() == 3
    page.goto(tab.url(f"/requests/{ours.number}/"))
    tab.arrived()
    forecast = page.locator("section", has=page.get_by_role("heading", name="Deadline forecast"))
    assert "finish around" in forecast.inner_text()

    # A campaign for the round.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
    tab.arrived("campaigns")
    page.get_by_role("link", name="New campaign").click()
    tab.arrived("new campaign")
    page.get_by_label("Experiment").select_option(label="DUNE")
    page.get_by_label("Name").fill("MCC5.0")
    page.get_by_label("Deadline").fill(days_ahead(50))
    page.get_by_label("Priority").select_option("high")
    with page.expect_navigation():
        page.get_by_role("button", name="Create campaign").click()
    tab.arrived("campaign")
    assert "Campaign MCC5.0 created" in page.locator(".messages").inner_text()
    campaign = Campaign.objects.get(name="MCC5.0")

    # Schedule the request: before, the forecast "with the current load"; after, the plan's.
    candidate = page.locator("ul.candidates li", has_text=ours.number)
    assert "With the current load this would finish around" in candidate.inner_text()
    candidate.get_by_role("checkbox").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Schedule and plan the jobs…").click()
    tab.arrived()
    tab.capture("scheduling-decision")
    assert ProductionRequest.objects.get(pk=ours.pk).state == RequestState.APPROVED
    with page.expect_navigation():
        page.get_by_role("button", name="Schedule them into MCC5.0").click()
    tab.arrived()
    assert f"Scheduled {ours.number}" in page.locator(".messages").inner_text()
    planned = Job.objects.filter(stage__campaign=campaign).count()
    assert planned > 0
    deadline = page.locator("section", has=page.get_by_role("heading", name="Deadline"))
    assert "If launched now, it would finish around" in deadline.first.inner_text()
    assert ProductionRequest.objects.get(pk=ours.pk).state == RequestState.SCHEDULED

    # Launch, from the keyboard, through its decision page.
    launch = page.get_by_role("button", name="Launch…", exact=True)
    with page.expect_navigation():
        press(page, launch, key="Space")
    tab.arrived()
    tab.capture("launch-decision")
    assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.PLANNED
    go = page.get_by_role("button", name="Launch MCC5.0")
    with page.expect_navigation():
        press(page, go, key="Space", start=page.get_by_label("Note (recorded)"))
    tab.arrived("campaign commitments")
    assert "launch done" in page.locator(".messages").inner_text()
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm commitments").click()
    tab.arrived()
    assert Commitment.objects.filter(campaign=campaign).count() == 4
    assert page.get_by_role("heading", name="Commitments").count() == 1
    assert page.locator(".badges .cstate-active").count() == 1
    assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.ACTIVE
    launched = campaign.events.get(kind="launch")
    assert "effect_shown" in launched.changes

    journey.finish()

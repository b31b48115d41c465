"""Journey 6: the pages as people use them at 1280 and 390 px (each capture is both
widths, with axe-core's check inside the page).

Lists: an operator sorts the requests by deadline, finds one by a sample's name, saves the
filter, exports the CSV, ticks a state in triage. Next steps: the liaison's home says what
needs their answer, the request opens with the question on top, they watch it. Forms: a
new request refused in one round with a summary at the top, Enter taking Submit, then saved
as a draft with only a title. Phones: the menu folds behind a button; the campaign's stages
show Why waiting and Submit now at 1280 px. Time: the liaison chooses a zone and the pages
name it. Context: ticket numbers link to the service desk, a job page names its host and
batch job, the date picker has a focus ring."""

import csv
import io

import pytest

from campaigns.models import Job
from campaigns.services import create_campaign, schedule_requests
from requests_app.models import ProductionRequest, SavedFilter
from requests_app.services import transition

from .support import DESKTOP, PHONE
from .world import build_world, days_ahead, submitted_request

pytestmark = pytest.mark.browser

DESK = "https://desk.example.org/ticket?number={ticket}"


@pytest.fixture
def desk(settings):
    settings.OPOS_TICKET_URL = DESK


def test_lists_sort_filter_save_and_export(journey, desk):
    world = build_world()
    late = submitted_request(world, "Atmospheric neutrinos", days=80)
    soon = submitted_request(world, "Beam nu_e appearance", days=20)
    tab = journey.tab("operator")
    page = tab.page
    tab.sign_in("olivia")
    tab.visit("/requests/", "requests")
    # Sorted by a click on the Deadline header, nearest first, and back.
    page.get_by_role("link", name="Deadline").click()
    tab.arrived()
    rows = page.locator("table.sortable tbody tr")
    assert soon.number in rows.first.inner_text()
    assert page.locator("th[aria-sort=ascending]").text_content().strip().startswith("Deadline")
    page.get_by_role("link", name="Deadline").click()
    tab.arrived()
    assert late.number in rows.first.inner_text()
    # A sample's name finds its request (typed, then Enter).
    search = page.get_by_label("Search")
    search.fill("beam-nu-e")
    with page.expect_navigation():
        search.press("Enter")
    tab.arrived()
    assert rows.count() == 1 and soon.number in rows.first.inner_text()
    # The ticket links to the service desk.
    assert page.get_by_role("link", name="RITM0012345").first.get_attribute("href") == (
        DESK.replace("{ticket}", "RITM0012345")
    )
    # Saved for later, under a name; it opens the list as it was.
    page.get_by_label("Save these filters as").fill("Beam search")
    with page.expect_navigation():
        page.get_by_role("button", name="Save filter").click()
    tab.arrived()
    assert "q=beam-nu-e" in SavedFilter.objects.get(user=world.operator).query
    tab.visit("/requests/")
    page.get_by_role("link", name="Beam search").click()
    tab.arrived("requests-saved-filter")
    assert rows.count() == 1
    # The CSV is what is filtered, with the page's zone.
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    body = download.value.path().read_text()
    lines = list(csv.reader(io.StringIO(body)))
    assert lines[0][0].startswith("# time zone: ")
    assert [r[0] for r in lines[2:]] == [soon.number]
    # Triage: the state filter is a row of check boxes.
    tab.visit("/triage/", "triage")
    page.get_by_role("checkbox", name="Needs information").check()
    page.get_by_role("checkbox", name="Submitted").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Filter", exact=True).click()
    tab.arrived()
    assert page.locator("table.sortable tbody tr").count() == 2
    # On a phone the filters start folded, the requests come first.
    page.set_viewport_size(PHONE)
    page.reload()
    assert not page.get_by_label("Search").is_visible()
    assert page.locator("table.sortable tbody tr").first.is_visible()
    page.set_viewport_size(DESKTOP)
    journey.finish()


def test_next_steps_forms_phones_time_and_context(journey, desk):
    world = build_world()
    asked = submitted_request(world, "Flux systematics", days=30)
    transition(asked, "request_info", world.operator, "Which flux file should we use?")
    scheduled = submitted_request(world, "Near detector", days=40)
    ProductionRequest.objects.filter(pk=scheduled.pk).update(state="approved")
    campaign = create_campaign(world.operator, world.dune, name="MCC5.0", deadline=days_ahead(50))
    schedule_requests(campaign, [scheduled.pk], world.operator)

    liaison = journey.tab("liaison")
    page = liaison.page
    liaison.sign_in("liam")
    liaison.visit("/", "home")
    waiting = page.locator("section", has=page.get_by_role("heading", name="Waiting for you"))
    assert asked.number in waiting.inner_text() and "Needs your answer" in waiting.inner_text()
    waiting.get_by_role("link", name=asked.number).click()
    liaison.arrived("request-needs-answer")
    banner = page.locator("#needs-answer")
    assert "Which flux file should we use?" in banner.inner_text()
    box = banner.bounding_box()
    assert box is not None and box["y"] < 400  # first thing under the title
    assert "Not scheduled yet" in page.inner_text("body")
    page.get_by_role("button", name="Watch").click()
    liaison.arrived()
    assert page.get_by_role("button", name="Unwatch").is_visible()
    assert asked.watchers.filter(pk=world.liaison.pk).exists()

    # Forms: Enter in the title takes Submit; every gap comes back in one round.
    liaison.visit("/requests/new/")
    page.get_by_label("Title").fill("Half-filed request")
    with page.expect_navigation():
        page.get_by_label("Title").press("Enter")
    liaison.arrived()
    summary = page.locator("#error-summary")
    assert summary.is_visible()
    text = summary.inner_text()
    for gap in ("Service-desk ticket", "Physics working group", "Deadline"):
        assert gap in text, text
    assert page.evaluate("document.activeElement.id") == "error-summary"
    liaison.capture("request-form-errors")
    summary.get_by_role("link", name="Deadline").click()
    assert page.evaluate("document.activeElement.id") == "id_deadline"
    # The date field (and its picker button) show a focus ring.
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    with page.expect_navigation():
        page.get_by_role("button", name="Save draft").click()
    liaison.arrived()
    draft = ProductionRequest.objects.get(title="Half-filed request")
    assert draft.state == "draft" and draft.deadline is None

    # Time: a zone of one's own, named on every page.
    liaison.visit("/account/preferences/", "preferences")
    page.get_by_label("Time zone").select_option("Asia/Tokyo")
    with page.expect_navigation():
        page.get_by_role("button", name="Save preferences").click()
    liaison.arrived()
    assert "times in Asia/Tokyo" in page.locator("footer").inner_text()

    # Phones: the menu folds behind a button.
    page.set_viewport_size(PHONE)
    nav = page.get_by_role("navigation", name="Main")
    menu = page.get_by_role("button", name="Menu")
    assert menu.is_visible() and not nav.is_visible()
    menu.click()
    assert nav.is_visible() and menu.get_attribute("aria-expanded") == "true"
    page.set_viewport_size(DESKTOP)
    assert nav.is_visible() and not menu.is_visible()

    # The operator: what waits on home, the stages at 1280 px, a job's own page.
    operator = journey.tab("operator")
    op = operator.page
    operator.sign_in("olivia")
    operator.visit("/", "home")
    assert "To triage" in op.inner_text("main")
    operator.visit(f"/campaigns/{campaign.pk}/", "campaign")
    for name in ("Why waiting", "Submit now"):
        header = op.get_by_role("columnheader", name=name)
        box = header.bounding_box()
        assert box is not None and box["x"] + box["width"] <= DESKTOP["width"], name
    job = Job.objects.filter(stage__campaign=campaign).order_by("pk").first()
    operator.visit(f"/campaigns/stages/{job.stage_id}/jobs/", "stage-jobs")
    assert op.get_by_role("columnheader", name="Host").is_visible()
    op.get_by_role("link", name=f"Job {job.index}, attempt {job.attempt}").first.click()
    operator.arrived("job")
    facts = op.locator("dl.facts").inner_text()
    assert "Host" in facts and "Batch id" in facts
    journey.finish()

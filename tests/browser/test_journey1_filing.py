"""Journey 1: a liaison signs in, starts a request with two samples, submits it with one
bad field, sees the error next to that field with every other value kept, fixes it,
submits it from the keyboard, finds it in "my requests", and cancels it through the
confirmation page (leaving it once, then confirming with a reason)."""

import pytest

from requests_app.choices import RequestState
from requests_app.models import ProductionRequest

from .support import press
from .world import build_world, days_ahead

pytestmark = pytest.mark.browser


def test_liaison_files_a_request(journey):
    world = build_world()
    tab = journey.tab("liaison")
    page = tab.page
    tab.sign_in("liam")
    tab.visit(name="home")

    page.get_by_role("link", name="New request").click()
    tab.arrived("new request")
    deadline = days_ahead(45)
    typed = {
        "#id_ticket": "RITM0012345",
        "#id_title": "MCC5.0 oscillation samples",
        "#id_description": "Beam neutrinos for the oscillation fit.",
        "#id_deadline": deadline,
    }
    assert page.input_value("#id_experiment") == "dune"  # the liaison's only experiment
    for selector, value in typed.items():
        page.fill(selector, value)
    page.select_option("#id_physics_group", label="Oscillations")
    page.select_option("#id_priority", "high")

    page.get_by_role("button", name="Add a sample line").click()  # by script, no round trip
    assert page.input_value("input[name='samples-TOTAL_FORMS']") == "2"
    lines = [
        {
            "name": "nu-mu-cc",
            "events": "1000",
            "events_per_job": "200",
            "parameters": "seed=7\nenergy_gev=3.5",
            "output_dataset": "dune:mcc5:nu-mu-cc",
        },
        {
            "name": "nu-e-cc",
            "events": "1000",
            "events_per_job": "5000",  # the bad field: more than the events
            "parameters": "seed=8",
            "output_dataset": "dune:mcc5:nu-e-cc",
        },
    ]
    for index, line in enumerate(lines):
        prefix = f"#id_samples-{index}-"
        page.select_option(prefix + "template", label="mcc-demo v1")
        for name, value in line.items():
            page.fill(prefix + name, value)
    assert "energy_gev" in page.locator("[data-sample-line]").nth(1).inner_text()

    with page.expect_navigation():
        page.get_by_role("button", name="Submit", exact=True).click()
    tab.arrived()
    assert not ProductionRequest.objects.exists()  # nothing half-saved

    # The error sits next to its field, in that field's box, and is announced.
    assert "Nothing was saved" in page.get_by_role("alert").first.inner_text()
    bad = page.locator("#id_samples-1-events_per_job")
    box = page.locator(".field.invalid", has=bad)
    assert box.count() == 1
    assert "larger than the number of events (1000)" in box.inner_text()
    assert page.locator(".field.invalid").count() == 1  # only that one
    # Every value typed is still there, the bad one too.
    for selector, value in typed.items():
        assert page.input_value(selector) == value, selector
    assert page.locator("#id_physics_group option:checked").inner_text() == "Oscillations"
    assert page.input_value("#id_priority") == "high"
    for index, line in enumerate(lines):
        prefix = f"#id_samples-{index}-"
        assert page.locator(prefix + "template option:checked").inner_text() == "mcc-demo v1"
        for name, value in line.items():
            assert page.input_value(prefix + name) == value, (index, name)
    tab.capture("form with the error")

    # Fix it, then submit from the keyboard: Tab to Submit, press Enter.
    bad.fill("250")
    submit = page.get_by_role("button", name="Submit", exact=True)
    with page.expect_navigation():
        press(page, submit, key="Enter", start=bad)
    tab.arrived("request")
    request = ProductionRequest.objects.get()
    assert request.state == RequestState.SUBMITTED
    assert f"{request.number} submitted." in page.locator(".messages").inner_text()
    assert page.locator("h1").inner_text().startswith(request.number)
    assert sorted(request.samples.values_list("name", "events_per_job")) == [
        ("nu-e-cc", 250),
        ("nu-mu-cc", 200),
    ]

    # "My requests" from the home page lists it, submitted.
    page.get_by_role("link", name="Home").click()
    tab.arrived()
    page.get_by_role("link", name="My requests").click()
    tab.arrived("my requests")
    row = page.locator("tbody tr", has_text=request.number)
    assert row.count() == 1
    assert "Submitted" in row.inner_text()
    assert "MCC5.0 oscillation samples" in row.inner_text()
    assert world.liaison.username == "liam"

    # Cancelling cannot be undone: the button leads to a page that says so and asks why;
    # leaving it keeps the request, confirming with a reason cancels it.
    row.get_by_role("link", name=request.number).click()
    tab.arrived()
    page.get_by_role("link", name="Cancel…").click()
    tab.arrived()
    assert "This cannot be undone" in page.locator("main").inner_text()
    tab.capture("confirm cancel")
    page.get_by_role("link", name="Keep the request as it is").click()
    tab.arrived()
    assert ProductionRequest.objects.get(pk=request.pk).state == RequestState.SUBMITTED
    page.get_by_role("link", name="Cancel…").click()
    tab.arrived()
    page.get_by_label("Why cancel this request?").fill("Superseded by the MCC6 request.")
    with page.expect_navigation():
        page.get_by_role("button", name=f"Cancel {request.number}").click()
    tab.arrived()
    assert f"{request.number} is now cancelled." in page.locator(".messages").inner_text()
    cancelled = ProductionRequest.objects.get(pk=request.pk)
    assert cancelled.state == RequestState.CANCELLED
    assert cancelled.transitions.latest("id").note == "Superseded by the MCC6 request."

    journey.finish()

"""The request form's script in a real Chromium: choices follow the experiment, the chosen
template's parameters show, and sample lines are added without a round trip."""

import datetime as dt
import shutil

import pytest
from django.utils import timezone

from requests_app.models import ProductionRequest
from tests.requests_app.builders import qualify

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def fill_request_form(page, url, template, group, other_group, other_template):
    page.goto(url)
    page.select_option("#id_experiment", "dune")
    assert page.locator(f"#id_physics_group option[value='{group.id}']").is_enabled()
    assert page.locator(f"#id_physics_group option[value='{other_group.id}']").is_disabled()
    assert page.locator(f"#id_samples-0-template option[value='{other_template.id}']").is_disabled()

    page.fill("#id_ticket", "RITM0012345")
    page.select_option("#id_physics_group", str(group.id))
    page.fill("#id_title", "Two samples")
    page.fill("#id_deadline", (timezone.localdate() + dt.timedelta(days=9)).isoformat())

    page.click("[data-add-line]")
    assert page.input_value("input[name='samples-TOTAL_FORMS']") == "2"
    assert page.url == url  # no round trip
    for index in (0, 1):
        prefix = f"#id_samples-{index}-"
        page.fill(prefix + "name", f"line-{index}")
        page.select_option(prefix + "template", str(template.id))
        page.fill(prefix + "events", "1000")
        page.fill(prefix + "events_per_job", "100")
        page.fill(prefix + "output_dataset", f"dune:line-{index}")
    help_box = page.locator("[data-sample-line]").nth(1).locator("[data-param-help]")
    assert "seed" in help_box.inner_text()

    page.click("button[name='intent'][value='save']:not(.default-button)")
    page.wait_for_url("**/requests/DUNE-*/")  # numbers are per experiment


def test_request_form_script(
    live_server, client, operator, experiment, other_experiment, liaison, other_liaison
):
    if CHROMIUM is None:
        pytest.skip("needs Chromium")
    template = qualify(experiment, liaison)
    other_template = qualify(other_experiment, other_liaison)
    group, other_group = experiment.groups.get(), other_experiment.groups.get()
    client.force_login(operator)
    session = {"name": "sessionid", "value": client.cookies["sessionid"].value}
    errors = []
    # Only the browser runs inside Playwright's block: its sync API runs an
    # event loop here, where the ORM refuses to be called.
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context()
        context.add_cookies([{**session, "url": live_server.url}])
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            fill_request_form(
                page,
                f"{live_server.url}/requests/new/",
                template,
                group,
                other_group,
                other_template,
            )
        finally:
            browser.close()
    assert errors == []
    request = ProductionRequest.objects.get()
    assert sorted(request.samples.values_list("name", flat=True)) == ["line-0", "line-1"]

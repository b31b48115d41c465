"""Journey 5: each role signs out (from the keyboard); the protected pages then send the
visitor to the sign-in page, which brings them back where they were going."""

from urllib.parse import parse_qs, urlparse

import pytest

from campaigns.services import create_campaign

from .world import build_world, days_ahead, submitted_request

pytestmark = pytest.mark.browser


def protected_pages(request, campaign) -> list[str]:
    return [
        "/",
        "/requests/",
        "/requests/new/",
        f"/requests/{request.number}/",
        "/triage/",
        "/training/",
        "/code/",
        "/campaigns/",
        f"/campaigns/{campaign.pk}/",
        "/campaigns/templates/",
        "/monitoring/",
        "/monitoring/operations/",
        "/monitoring/experiments/dune/",
        f"/monitoring/campaigns/{campaign.pk}/",
        f"/monitoring/requests/{request.number}/",
        "/servicedesk/health/",
        "/account/preferences/",
    ]


def test_every_role_signs_out(journey):
    world = build_world()
    request = submitted_request(world, "MCC5.0 oscillation samples", days=45)
    campaign = create_campaign(world.operator, world.dune, name="MCC5.0", deadline=days_ahead(50))
    pages = protected_pages(request, campaign)
    # Each role signs in, looks at the page they work on, and signs out.
    for who, username, page_path in [
        ("liaison", "liam", f"/requests/{request.number}/"),
        ("operator", "olivia", "/triage/"),
        ("physicist", "phoebe", "/monitoring/experiments/dune/"),
    ]:
        tab = journey.tab(who)
        tab.sign_in(username)
        tab.visit()
        tab.capture("home")  # now: after signing out, it is the sign-in page
        tab.visit(page_path)
        tab.capture("work")
        tab.sign_out()
        assert tab.page.get_by_role("heading", name="Sign in").is_visible()

        for path in pages:
            tab.page.goto(tab.url(path))
            where = urlparse(tab.page.url)
            assert where.path == "/accounts/login/", (who, path, tab.page.url)
            assert parse_qs(where.query).get("next") == [path], (who, path, tab.page.url)
        tab.visit()
        tab.capture("signed out")

    # Signing in again from such a redirect leads to the page asked for.
    tab.page.goto(tab.url("/monitoring/experiments/dune/"))
    tab.page.get_by_label("Username").fill("phoebe")
    tab.page.get_by_label("Password").fill("pw")
    with tab.page.expect_navigation():
        tab.page.get_by_label("Password").press("Enter")
    assert urlparse(tab.page.url).path == "/monitoring/experiments/dune/"
    tab.arrived("back after signing in")

    journey.finish()

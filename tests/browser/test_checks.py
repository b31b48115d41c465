"""The journeys' checks catch what they are for: a field without a label, a CSP
violation, a script error, a page wider than a phone, a control out of the tab order."""

import pytest

from .support import press
from .world import build_world

pytestmark = pytest.mark.browser


def test_the_checks_catch_problems(journey):
    build_world()
    tab = journey.tab("liaison")
    page = tab.page
    tab.sign_in("liam")

    page.evaluate(
        """() => {
        const main = document.querySelector("main");
        main.insertAdjacentHTML("beforeend", '<input name="orphan">');
        main.insertAdjacentHTML("beforeend", '<p style="width: 2000px">inline style</p>');
        main.insertAdjacentHTML("beforeend", '<img src="/nowhere.png" onerror="x()">');
        main.insertAdjacentHTML("beforeend", '<button tabindex="-1">Unreachable</button>');
    }"""
    )
    with pytest.raises(AssertionError, match="orphan"):
        tab.check_labels()
    page.evaluate("() => { window.setTimeout(() => { throw new Error('boom'); }); }")
    page.wait_for_timeout(300)
    # Not at the end of the journey: these are the point here.
    tab.capture("home with problems")
    problems = "\n".join(tab.problems())
    assert "CSP violation: style-src-attr" in problems
    assert "CSP violation: script-src-attr" in problems
    assert "404 (Not Found)" in problems  # /nowhere.png
    assert "page error: boom" in problems
    assert "wider than a phone screen" not in problems  # the inline style never applied
    page.evaluate(
        """() => {
        const wide = document.createElement("p");
        wide.textContent = "wide";
        wide.style.width = "2000px";  // through the CSSOM, which the CSP allows
        document.querySelector("main").append(wide);
    }"""
    )
    tab.capture("home too wide")
    assert "wider than a phone screen: ['<p" in "\n".join(tab.problems())
    with pytest.raises(pytest.fail.Exception, match="cannot be reached with Tab"):
        press(page, page.get_by_role("button", name="Unreachable"), limit=30)
    tab.errors.clear()
    journey.finish()

"""What every journey does in the browser: one person's window with its checks (no console
errors, every field labelled, main actions from the keyboard), screenshots, and the real
Celery worker the execution journey drives.

The fixtures that make these live in ``conftest.py``.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PASSWORD = "pw"  # tests.factories.UserFactory's

# Chromium reports a CSP violation on the console too; this listener names the directive
# and the source, which the console message does not always do.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline")
    + " at " + e.sourceFile + ":" + e.lineNumber);
});
"""

# Form fields without a name a screen reader can read: no <label for=its id> with text, no
# aria-label, no aria-labelledby that points at text. (A wrapping label without `for` would
# do for most screen readers; the rule asks for the explicit one, which all understand.)
UNLABELLED_FIELDS = """
() => {
  const text = (id) => {
    const node = document.getElementById(id);
    return node && node.textContent.trim();
  };
  const labelFor = (el) =>
    el.id && Array.from(el.labels || []).some((l) => l.htmlFor === el.id && l.textContent.trim());
  const named = (el) =>
    (el.getAttribute("aria-label") || "").trim()
    || (el.getAttribute("aria-labelledby") || "").split(/\\s+/).filter(Boolean).some(text)
    || labelFor(el);
  const skip = ["hidden", "submit", "button", "reset", "image"];
  return Array.from(document.querySelectorAll("input, select, textarea"))
    .filter((el) => !skip.includes((el.getAttribute("type") || "").toLowerCase()))
    .filter((el) => !named(el))
    .map((el) => el.outerHTML.slice(0, 200));
}
"""

# Scrolling sideways on a phone: how much wider than the screen the page is, and the
# outermost elements sticking out (not counting what scrolls inside its own box).
OVERFLOW = """
() => {
  const width = window.innerWidth;
  const sticksOut = (el) => el.getBoundingClientRect().right > width + 1;
  // Inside a box that scrolls or clips it, unless positioned out of that box.
  const contained = (el) => {
    if (getComputedStyle(el).position === "absolute") return false;
    for (let n = el.parentElement; n; n = n.parentElement) {
      if (["auto", "scroll", "hidden"].includes(getComputedStyle(n).overflowX)) return true;
    }
    return false;
  };
  const outermost = (el) => {
    const parent = el.parentElement;
    return !(parent && sticksOut(parent) && !contained(parent));
  };
  const culprits = Array.from(document.body.querySelectorAll("*"))
    .filter((el) => sticksOut(el) && !contained(el) && outermost(el));
  return {
    wider: document.documentElement.scrollWidth - width,
    culprits: culprits.slice(0, 5).map((el) => el.outerHTML.slice(0, 160)),
  };
}
"""


# axe-core (from npm, fetched by `make install` into .axe/, never committed) checks each
# page as it is shown: serious and critical violations are problems of the journey.
AXE_SOURCE = ROOT / ".axe" / "node_modules" / "axe-core" / "axe.min.js"
AXE_RUN = """
async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.impact} ${v.id} (${v.help}): ` + v.nodes.slice(0, 3)
      .map((n) => n.target.join(" ") + " "
        + (n.failureSummary || "").replace(/\\s+/g, " ").slice(0, 160))
      .join(" | "));
}
"""


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass
class Journey:
    """A journey's browser, artifacts folder and the people in it (one window each)."""

    name: str
    folder: Path
    browser: Any
    base_url: str
    tabs: list[Tab] = field(default_factory=list)
    axe: str = ""  # axe-core's source, loaded into every page of every window
    finished: bool = False
    signed_in_once: bool = False

    def tab(self, who: str) -> Tab:
        return Tab(self.browser, self.base_url, self, who)

    def finish(self) -> None:
        """Screenshot every main page each person visited; then the checks of all pages."""
        for tab in self.tabs:
            tab.screenshots()
        self.finished = True
        problems = [p for tab in self.tabs for p in tab.problems()]
        print(f"\nscreenshots of {self.name}: {self.folder}")
        assert not problems, "\n".join(problems)

    def close(self) -> None:
        """Close every window; after a failure, keep a picture of where each one was."""
        for tab in self.tabs:
            if not self.finished:
                try:
                    tab.page.screenshot(path=self.folder / f"failed-{slug(tab.who)}.png")
                except Exception as exc:  # the picture is a help, never the failure
                    print(f"no failure screenshot of {tab.who}: {exc}")
            tab.close()


class Tab:
    """One person's browser window (its own cookies), recording what went wrong on the way.

    ``visit`` opens a page, checks its fields' labels and remembers it as a main page for
    the screenshots ``Journey.finish`` takes at the end.
    """

    def __init__(self, browser: Any, base_url: str, journey: Journey, who: str):
        self.base_url = base_url
        self.journey = journey
        self.who = who
        self.context = browser.new_context(base_url=base_url, viewport=DESKTOP)
        self.context.add_init_script(CSP_LISTENER)
        if journey.axe:
            # An init script runs before the page's own and is not subject to its CSP.
            self.context.add_init_script(journey.axe)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.errors: list[str] = []
        self.allowed: set[str] = set()  # URLs whose failed load is the point (a 404 asked for)
        self.main_pages: dict[str, str] = {}
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"{who}: page error: {exc}"))
        journey.tabs.append(self)

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        source = (message.location or {}).get("url", "")
        if source in self.allowed and message.text.startswith("Failed to load resource"):
            return
        self.errors.append(f"{self.who}: console error on {self.page.url}: {message.text}")

    # --- moving around -------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base_url + path if path.startswith("/") else path

    def path(self) -> str:
        return self.page.url.removeprefix(self.base_url)

    def visit(self, path: str | None = None, name: str | None = None) -> Any:
        """Open ``path`` (or stay), check the page, and keep it as main page ``name``."""
        response = None
        if path is not None:
            response = self.page.goto(self.url(path))
            assert response is not None and response.status < 400, (path, response)
        self.check_labels()
        if name:
            self.main_pages[name] = self.page.url
        return response

    def arrived(self, name: str | None = None) -> None:
        """Wait for the page a click or a key led to; check it like ``visit``."""
        self.page.wait_for_load_state("load")
        self.visit(name=name)

    def expect_status(self, path: str, status: int) -> None:
        """Open a page that must answer ``status`` (a 404 of someone else's campaign)."""
        url = self.url(path)
        self.allowed.add(url)
        response = self.page.goto(url)
        assert response is not None and response.status == status, (path, response.status)

    # --- signing in and out --------------------------------------------------------------

    def sign_in(self, username: str, password: str = PASSWORD) -> None:
        """Type the credentials and press Enter, as people do."""
        self.visit("/accounts/login/")
        if not self.journey.signed_in_once:  # one picture of the page is enough
            self.capture("sign-in")
            self.journey.signed_in_once = True
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)
        with self.page.expect_navigation():
            self.page.get_by_label("Password").press("Enter")
        assert "/accounts/login/" not in self.page.url, f"{username} could not sign in"
        self.arrived()

    def sign_out(self) -> None:
        """The header's Sign out button, reached with Tab and pressed with Space."""
        button = self.page.get_by_role("button", name="Sign out")
        with self.page.expect_navigation():
            press(self.page, button, key="Space")
        assert "/accounts/login/" in self.page.url, self.page.url

    # --- checks --------------------------------------------------------------------------

    def check_labels(self) -> None:
        unlabelled = self.page.evaluate(UNLABELLED_FIELDS)
        assert not unlabelled, f"fields without a label on {self.page.url}: {unlabelled}"

    def problems(self) -> list[str]:
        return list(self.errors)

    def screenshots(self) -> None:
        """Full-page screenshots of every main page, as it is now, at both widths."""
        for name, url in self.main_pages.items():
            self.page.goto(url)
            self.capture(name)

    def check_accessibility(self, label: str) -> None:
        """axe-core inside the page: serious or critical violations are problems."""
        if not self.journey.axe:
            return
        for problem in self.page.evaluate(AXE_RUN):
            self.errors.append(f"{self.who}: {self.path()} ({label}): accessibility: {problem}")

    def capture(self, name: str) -> None:
        """Full-page screenshots of the page as it is (a form showing its errors, say) at
        desktop and phone widths, each checked by axe-core; a page wider than a phone's
        screen is a problem."""
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            self.page.set_viewport_size(size)
            file = f"{slug(self.who)}-{slug(name)}-{label}.png"
            screenshot(self.page, self.journey.folder / file)
            self.check_accessibility(label)
            if label == "phone":
                overflow = self.page.evaluate(OVERFLOW)
                if overflow["wider"] > 1:
                    self.errors.append(
                        f"{self.who}: {self.path()} is {overflow['wider']}px wider than a "
                        f"phone screen: {overflow['culprits']}"
                    )
        self.page.set_viewport_size(DESKTOP)

    def close(self) -> None:
        self.context.close()


# Chromium's answer when the page had no frame to give yet: right after a resize, on a
# machine busy with other tests, its compositor can be a frame behind.
NO_FRAME_YET = "Unable to capture screenshot"
NEXT_FRAMES = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"


def screenshot(page: Any, path: Path, tries: int = 3) -> None:
    """A full-page screenshot; asked again, after the page painted twice more, when
    Chromium had no frame to capture yet."""
    from playwright.sync_api import Error

    for attempt in range(1, tries + 1):
        try:
            page.screenshot(path=path, full_page=True)
            return
        except Error as exc:
            if NO_FRAME_YET not in str(exc) or attempt == tries:
                raise
            page.evaluate(NEXT_FRAMES)


def press(
    page: Any,
    target: Any,
    key: str = "Enter",
    start: Any = None,
    limit: int = 120,
    slowly: bool = False,
):
    """Reach ``target`` with the Tab key (from ``start``, else the top of the page) and
    press ``key`` on it: the action works from the keyboard, in the tab order.

    ``slowly``: at a person's pace (a quarter second a key), so that a page that changes
    under the reader (a dashboard refreshing in place) has the time to do so meanwhile.
    """
    if start is not None:
        start.focus()
    else:
        page.evaluate("() => { if (document.activeElement) document.activeElement.blur(); }")
    for _ in range(limit):
        page.keyboard.press("Tab")
        if slowly:
            page.wait_for_timeout(250)
        if has_focus(target):
            if slowly:  # a refresh now and then, with the focus where the reader left it
                page.wait_for_timeout(1500)
                assert has_focus(target), "a refresh in place took the keyboard focus away"
            page.keyboard.press(key)
            return
    pytest.fail(f"{target} cannot be reached with Tab within {limit} presses")


def has_focus(target: Any) -> bool:
    """Whether ``target`` holds the keyboard focus.

    Playwright finds the element and then evaluates on it in two steps: a refresh in place
    between them hands over the replaced element, which is no longer in the page and never
    focused. Such an answer is not one: look again, the locator finds the new element.
    """
    for _ in range(10):
        focused = target.evaluate("(el) => el.isConnected ? el === document.activeElement : null")
        if focused is not None:
            return focused
    raise AssertionError(f"{target} was replaced ten times in a row while being read")


def focused_text(page: Any) -> str:
    return page.evaluate("() => document.activeElement ? document.activeElement.outerHTML : ''")


# --- the real worker ------------------------------------------------------------------------

# What beat sends, with short intervals: the execution journey sends it itself, each cycle.
BEAT_TASKS = (
    "campaigns.submit_ready",
    "campaigns.poll",
    "campaigns.finalize",
    "monitoring.record_snapshots",
)


@dataclass
class Worker:
    """A real ``celery worker`` process sharing the test database, and a client to drive it."""

    proc: subprocess.Popen
    log: Path
    client: Any
    queue: str
    broker: str

    def tick(self) -> None:
        """One beat: each periodic task once, expiring before the next beat."""
        assert self.proc.poll() is None, "the worker died:\n" + self.tail()
        for name in BEAT_TASKS:
            self.client.send_task(name, queue=self.queue, expires=5)

    def tail(self, size: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-size:]

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def wait_started(proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    # A bound, not a wait (the loop ends at "ready."): generous for a busy machine.
    deadline = time.monotonic() + timeout
    while "ready." not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the Celery worker did not start:\n" + log.read_text()[-3000:])
        time.sleep(0.2)

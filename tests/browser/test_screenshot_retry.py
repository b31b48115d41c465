"""A journey's screenshot is asked again when Chromium had no frame to give yet, and only
then: any other error of the browser is the test's failure."""

import pytest
from playwright.sync_api import Error

from .support import NEXT_FRAMES, NO_FRAME_YET, screenshot


class Page:
    """A page whose first screenshots fail with ``errors``, then succeed."""

    def __init__(self, *errors: str) -> None:
        self.errors = list(errors)
        self.calls: list[str] = []

    def screenshot(self, path, full_page):
        self.calls.append("screenshot")
        if self.errors:
            raise Error(self.errors.pop(0))
        path.write_bytes(b"png")

    def evaluate(self, script):
        self.calls.append(script)


def test_no_frame_yet_is_asked_again_after_two_frames(tmp_path):
    page = Page(f"Page.screenshot: Protocol error (Page.captureScreenshot): {NO_FRAME_YET}")
    screenshot(page, tmp_path / "a.png")
    assert page.calls == ["screenshot", NEXT_FRAMES, "screenshot"]
    assert (tmp_path / "a.png").read_bytes() == b"png"


def test_other_errors_and_a_frame_that_never_comes_fail(tmp_path):
    with pytest.raises(Error, match="Target closed"):
        screenshot(Page("Target closed"), tmp_path / "b.png")
    stuck = Page(*[NO_FRAME_YET] * 3)
    with pytest.raises(Error, match=NO_FRAME_YET):
        screenshot(stuck, tmp_path / "c.png")
    assert stuck.calls.count("screenshot") == 3

"""Journey 3: jobs run through a real Celery worker on the local batch backend while the
operator watches the campaign dashboard change in place (no reload); one sample's code was
changed after registration, so its job fails and shows under its failure class; once the
code is put back, a recovery launch from the keyboard resubmits it and the campaign
completes, again watched in place."""

import shutil
import time

import pytest

from campaigns.choices import CampaignState, FailureClass, JobState
from campaigns.models import Campaign, Job
from campaigns.services import campaign_action, create_campaign, schedule_requests
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest
from tests.campaigns.exec_support import DEMO, demo_template, jobs_by_state
from tests.campaigns.factories import approved_request
from tests.factories import SampleFactory

from .support import press
from .world import build_world, days_ahead

pytestmark = pytest.mark.browser

MISMATCH = FailureClass.CODE_MISMATCH.label  # "Production code checksum mismatch"


class Watch:
    """The dashboard as the operator sees it: read in place while the worker works."""

    def __init__(self, tab, worker):
        self.tab, self.page, self.worker = tab, tab.page, worker
        self.navigations: list[str] = []
        self.page.on(
            "framenavigated",
            lambda frame: frame == self.page.main_frame and self.navigations.append(frame.url),
        )

    def start(self) -> None:
        """From now on, any reload or navigation would lose the mark."""
        self.page.evaluate("() => { window.__stayed = 'same document'; }")
        self.origin = self.page.evaluate("() => performance.timeOrigin")
        self.navigations.clear()

    def progress(self) -> str:
        return self.page.locator(".kpi .big").first.inner_text().strip()

    def until(self, done, what: str, timeout: float = 90.0) -> list[str]:
        """Beat the worker once a second until ``done()``; the progress figures seen."""
        seen = [self.progress()]
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{what}: not after {timeout}s; progress seen {seen}, jobs "
                    f"{jobs_by_state()}\nworker log:\n{self.worker.tail()}"
                )
            self.worker.tick()
            self.page.wait_for_timeout(1000)
            figure = self.progress()
            if figure != seen[-1]:
                seen.append(figure)
        # ``done()`` may have read a figure the page refreshed to after the loop's last look.
        figure = self.progress()
        if figure != seen[-1]:
            seen.append(figure)
        return seen

    def assert_in_place(self) -> None:
        assert self.page.evaluate("() => window.__stayed") == "same document"
        assert self.page.evaluate("() => performance.timeOrigin") == self.origin
        assert self.navigations == []


def test_jobs_run_fail_and_recover_while_the_operator_watches(journey, real_worker, tmp_path):
    world = build_world()
    # Sample B's generation script is a copy, changed after it was registered.
    script = tmp_path / "code" / "generate.py"
    script.parent.mkdir()
    shutil.copy(DEMO / "generate.py", script)
    broken = demo_template(world.dune, scripts={"generation": script})
    request = approved_request(world.dune, template=world.template, events=400, per_job=200)
    SampleFactory(request=request, name="nu-e-cc", template=broken, events=200, events_per_job=200)
    original = script.read_text()
    script.write_text(original + "\n# edited after registration\n")
    campaign = create_campaign(world.operator, world.dune, name="MCC5.0", deadline=days_ahead(40))
    schedule_requests(campaign, [request.pk], world.operator)
    campaign_action(campaign, "launch", world.operator)

    tab = journey.tab("operator")
    page = tab.page
    tab.sign_in("olivia")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Progress").click()
    tab.arrived("operations")
    page.get_by_role("link", name="MCC5.0").first.click()
    tab.arrived("dashboard")
    watch = Watch(tab, real_worker)
    watch.start()
    failures = page.locator("section", has=page.get_by_role("heading", name="Failures by class"))

    def first_round_over() -> bool:
        # Sample B's later stages stay planned: their input never came.
        settled = not Job.objects.filter(
            stage__campaign=campaign,
            state__in=[JobState.READY, JobState.QUEUED, JobState.RUNNING, JobState.HELD],
        ).exists()
        return settled and MISMATCH in failures.inner_text() and watch.progress() == "66.6%"

    seen = watch.until(first_round_over, "sample A done and sample B's job failed")
    assert len(seen) >= 2, seen  # the figure changed on the page
    watch.assert_in_place()
    failed = Job.objects.get(stage__campaign=campaign, state=JobState.FAILED)
    assert failed.failure_class == FailureClass.CODE_MISMATCH
    row = failures.locator("tbody tr", has_text=MISMATCH)
    # The example names the request, sample, stage, job and attempt.
    example = row.inner_text()
    assert failed.stage.request.number in example and failed.stage.sample.name in example
    assert "0. generation · job #0, attempt 1" in example
    tab.capture("dashboard with the failure")

    # The failed job's log, then its stage's jobs with the recovery launch.
    row.get_by_role("link").first.click()
    tab.arrived("job log")
    assert MISMATCH in page.locator(".facts").inner_text()
    page.get_by_role("link", name="MCC5.0").click()
    tab.arrived()
    page.get_by_role("link", name="Plan and actions").click()
    tab.arrived("plan")
    stage_row = page.locator("tr", has_text=failed.stage.sample.name).filter(has_text="generation")
    stage_row.get_by_role("link", name="0. generation").click()
    tab.arrived("stage jobs")
    job_row = page.locator("tbody tr", has_text="Failed")
    assert MISMATCH in job_row.inner_text()

    script.write_text(original)  # the liaison put the registered version back
    page.get_by_label("Why recover").fill("Script restored to the registered version.")
    recover = page.get_by_role("button", name="Recover failed jobs and missing outputs")
    with page.expect_navigation():
        press(page, recover, key="Enter", start=page.get_by_label("Why recover"))
    tab.arrived()
    assert "Recovery launched: 1 failed jobs" in page.locator(".messages").inner_text()

    # Back on the dashboard, watched in place until the campaign completes.
    page.get_by_role("link", name="MCC5.0").click()
    tab.arrived()
    page.get_by_role("link", name="Progress dashboard").click()
    tab.arrived()
    watch.start()
    completed = page.locator(".live .badges .cstate-completed")
    seen = watch.until(lambda: completed.count() == 1, "the campaign completed after recovery")
    watch.assert_in_place()
    assert watch.progress() == "100.0%", seen
    assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.COMPLETED
    assert ProductionRequest.objects.get(pk=request.pk).state == RequestState.COMPLETED
    retried = Job.objects.get(stage=failed.stage, attempt=2)
    assert (retried.state, retried.parent_id) == (JobState.SUCCEEDED, failed.pk)

    journey.finish()

"""Journey 6: an operator steers a campaign through a real Celery worker on the local batch
backend. The campaign is set to launch two test jobs of each stage first; they run out of
memory, so the launch stops with the reason on the page. A recovery with more memory (an
override for the new attempts only) from the stage page makes them pass, and a click
launches the rest. One range of events can never be produced, so the campaign stalls at
83 %: the operator lowers the completion threshold and force-completes it, abandoning the
rest with a reason."""

import time

import pytest
from django.urls import reverse

from campaigns.choices import CampaignState, JobState, LaunchPhase
from campaigns.models import Campaign, Job, Stage
from campaigns.services import create_campaign, schedule_requests
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest
from tests.campaigns.exec_support import DEMO, demo_template, jobs_by_state
from tests.campaigns.factories import approved_request

from .world import build_world, days_ahead

pytestmark = pytest.mark.browser

# The demo generator, needing 900 MB, and unable to make events 500-599.
CHECKS = """
    if job["resources"]["memory_mb"] < 900:
        raise MemoryError("generator tables need 900 MB")
    if job["first_event"] == 500:
        print("generator table corrupt for events 500-599", file=__import__("sys").stderr)
        return 2
"""


def until(worker, done, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout}s; jobs {jobs_by_state()}\n{worker.tail()}")
        worker.tick()
        time.sleep(1)


def test_test_launch_recovery_with_overrides_and_force_complete(journey, real_worker, tmp_path):
    world = build_world()
    source = (DEMO / "generate.py").read_text()
    anchor = '    job = json.loads(Path("job.json").read_text())\n'
    assert anchor in source
    script = tmp_path / "code" / "generate.py"
    script.parent.mkdir()
    script.write_text(source.replace(anchor, anchor + CHECKS))
    template = demo_template(world.dune, scripts={"generation": script})
    request = approved_request(world.dune, template=template, events=600, per_job=100)
    campaign = create_campaign(world.operator, world.dune, name="MCC6.0", deadline=days_ahead(40))
    schedule_requests(campaign, [request.pk], world.operator)
    detail = reverse("campaigns:detail", args=[campaign.pk])

    tab = journey.tab("operator")
    page = tab.page
    tab.sign_in("olivia")
    tab.visit(detail, "campaign")
    # Two test jobs of each stage first, then the launch.
    page.get_by_label("Test jobs of each stage, launched first (0: none)").fill("2")
    page.get_by_role("button", name="Save the settings").click()
    tab.arrived()
    assert "Settings saved." in page.locator(".messages").inner_text()
    with page.expect_navigation():
        page.get_by_role("button", name="Launch…").click()
    # Launch leads to its decision page first: the effect on others, then the go-ahead.
    tab.arrived()  # not a main page: revisited at the end it would have nothing to decide
    assert "Effect, projected on the live state" in page.locator("main").inner_text()
    with page.expect_navigation():
        page.get_by_role("button", name="Launch MCC6.0").click()
    # A launch leads to the commitments the tracker proposes; confirmed, on to its dashboard.
    tab.arrived("campaign commitments")
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm commitments").click()
    tab.arrived()
    tab.visit(detail)
    assert (
        "Test launch: 2 jobs of each stage run first" in page.locator("#test-launch").inner_text()
    )

    # The campaign pauses at the first failed test job; the other may still be running:
    # wait for both, since the recovery below resubmits the failed ones.
    until(
        real_worker,
        lambda: (
            Campaign.objects.get(pk=campaign.pk).test_phase == LaunchPhase.FAILED
            and Job.objects.filter(stage__campaign=campaign, state=JobState.FAILED).count() == 2
        ),
        "the test jobs failed",
    )
    tab.visit(detail)
    banner = page.locator("#test-launch").inner_text()
    assert "The test jobs failed; the campaign is paused." in banner
    assert "stage generation: test job" in banner and "out_of_memory" in banner
    assert (
        Job.objects.filter(stage__campaign=campaign)
        .exclude(state=JobState.READY)
        .exclude(state=JobState.PLANNED)
        .count()
        == 2
    )
    tab.capture("test launch failed")

    # Recover the stage's failed test jobs with more memory, from the stage page.
    generation = Stage.objects.get(campaign=campaign, position=0)
    tab.visit(reverse("campaigns:stage_jobs", args=[generation.pk]), "stage jobs")
    page.get_by_label("Why recover").fill("The generator tables grew: 1000 MB.")
    page.get_by_text("Overrides for the new attempts").click()
    page.get_by_label("Memory of the new attempts (MB; empty: as before)").fill("1000")
    page.get_by_role("button", name="Recover failed jobs and missing outputs").click()
    tab.arrived()
    message = page.locator(".messages").inner_text()
    assert "Recovery launched: 2 failed jobs and 0 with missing outputs resubmitted" in message
    assert "memory_mb 1000" in message
    assert set(
        Job.objects.filter(stage=generation, attempt=2).values_list("memory_mb", flat=True)
    ) == {1000}

    # The failed test needs a reason to go on; then the full launch.
    tab.visit(detail)
    page.get_by_label("Why go on without a passed test (required)").fill(
        "Memory raised by the recovery; the rest retries with more."
    )
    page.get_by_role("button", name="Launch fully").click()
    tab.arrived()
    assert "Full launch" in page.locator(".messages").inner_text()
    assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.ACTIVE

    reconstruction = Stage.objects.get(campaign=campaign, position=2)

    def stalled() -> bool:
        # Everything ran that can: events 500-599 gave up, their later stages wait.
        return (
            not Job.objects.filter(
                stage__campaign=campaign,
                state__in=[JobState.READY, JobState.QUEUED, JobState.RUNNING, JobState.HELD],
            ).exists()
            and not Job.objects.filter(stage=generation, state=JobState.PLANNED).exists()
            and Job.objects.filter(stage=reconstruction, state=JobState.SUCCEEDED).count() == 5
        )

    until(real_worker, stalled, "five of six events ranges through every stage", timeout=240)

    # Force-complete: refused at the templates' 95 %, done at 80 %.
    tab.visit(detail)
    figures = page.locator("#completion-figures").inner_text()
    assert figures.startswith("83.3 % of the final jobs done (5 of 6); the threshold is 95 %")
    page.get_by_label("Force-complete threshold (%; empty: the templates' default)").fill("80")
    page.get_by_role("button", name="Save the settings").click()
    tab.arrived()
    page.get_by_label("Why the rest is abandoned (recorded, sent to the requesters)").fill(
        "Events 500-599 cannot be generated; 83 % is enough for the summer analysis."
    )
    page.get_by_role("button", name="Force-complete the campaign").click()
    tab.arrived()
    assert "Force-completed at 83.3 % (threshold 80 %)" in page.locator(".messages").inner_text()
    assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.COMPLETED
    assert ProductionRequest.objects.get(pk=request.pk).state == RequestState.COMPLETED
    tab.capture("force-completed")

    # The request's progress page says which part is missing.
    tab.visit(reverse("monitoring:request", args=[request.number]), "request progress")
    part = page.locator(".partial-completion").inner_text()
    assert "83.3 % of the final jobs done, 1 job abandoned" in part

    journey.finish()

"""The monitoring pages say what matters, refresh in place, and keep to the CSP."""

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Job
from requests_app.models import ProductionRequest
from requests_app.services.transitions import system_transition, transition

from .builders import fail_jobs

pytestmark = pytest.mark.django_db


def pages(campaign):
    request = campaign.links.first().request
    return {
        "experiment": reverse("monitoring:experiment", args=[campaign.experiment.slug]),
        "campaign": reverse("monitoring:campaign", args=[campaign.pk]),
        "request": reverse("monitoring:request", args=[request.number]),
        "operations": reverse("monitoring:operations"),
        "report": reverse("monitoring:report", args=[campaign.experiment.slug]),
        "digest": reverse("monitoring:digest"),
    }


def test_the_campaign_dashboard(client, operator, round_):
    client.force_login(operator)
    page = client.get(reverse("monitoring:campaign", args=[round_.pk])).content.decode()
    assert "<h1>MCC5.0</h1>" in page
    # The burn-up: actual path, target, projection with its band; the deadline, beyond
    # the projected end, marked at the right edge with its date (the active window).
    svg = re.search(r'<svg class="burnup".*?</svg>', page, re.S).group(0)
    for part in (
        'class="actual"',
        'class="target"',
        'class="deadline-label deadline-edge"',
        'class="projected"',
        'class="band"',
    ):
        assert part in svg, part
    assert f"deadline {round_.deadline:%Y-%m-%d} →" in svg
    # The whole span, to the deadline, draws its line.
    whole = client.get(reverse("monitoring:campaign", args=[round_.pk]) + "?chart=whole")
    svg = re.search(r'<svg class="burnup".*?</svg>', whole.content.decode(), re.S).group(0)
    assert 'class="deadline"' in svg and "deadline-edge" not in svg
    # The choice survives the refresh in place, and can be switched back.
    page = whole.content.decode()
    assert "?partial=1&amp;chart=whole" in page and 'href="?chart=active"' in page
    partial = client.get(
        reverse("monitoring:campaign", args=[round_.pk]) + "?partial=1&chart=whole"
    ).content.decode()
    assert 'class="deadline"' in partial and "<html" not in partial
    bad = client.get(reverse("monitoring:campaign", args=[round_.pk]) + "?chart=weekly")
    assert bad.status_code == 400 and b"chart: must be one of active, whole" in bad.content
    assert "Burn-up: cumulative events over time" in svg
    assert "2.4k of 6k events done" in svg
    # Milestones as time since launch; throughput; status.
    assert "First job running" in page and "after launch" in page
    assert "50% of events" in page and "not yet" in page
    assert "LAST 6 H" in page.upper() and "100/h" in page
    assert "On track" in page
    assert "At the current pace" in page
    for link in round_.links.select_related("request"):
        assert link.request.number in page


def test_the_request_page_has_progress_hold_time_and_timeline(client, liaison, operator, round_):
    request = round_.links.first().request
    system_transition(request.pk, "start", note="The first job is running.")
    transition(request, "hold", operator, note="Account permission problem.")
    ProductionRequest.objects.filter(pk=request.pk).update(
        hold_started=timezone.now() - dt.timedelta(hours=2), hold_seconds=3600
    )
    client.force_login(liaison)
    page = client.get(reverse("monitoring:request", args=[request.number])).content.decode()
    assert "Account permission problem." in page
    assert "3 h" in page  # an hour before, two now
    assert "On hold" in page
    assert "Timeline" in page and "put on hold" in page
    assert "Samples and stages" in page and "generation" in page


def test_the_experiment_overview_lists_campaigns_and_open_requests(client, physicist, round_):
    client.force_login(physicist)
    page = client.get(pages(round_)["experiment"]).content.decode()
    assert "MCC5.0" in page and "40.0%" in page
    for link in round_.links.select_related("request"):
        assert link.request.number in page
    assert "On track" in page


def test_the_operator_overview(client, operator, round_):
    fail_jobs(round_, 3)
    client.force_login(operator)
    page = client.get(pages(round_)["operations"]).content.decode()
    assert "most at risk first" in page
    assert "Out of memory" in page and "Batch backends" in page
    job = Job.objects.filter(stage__campaign=round_, state="failed").order_by("-id").first()
    assert reverse("monitoring:job_log", args=[job.pk]) in page


def test_a_partial_is_the_live_region_alone(client, operator, round_):
    client.force_login(operator)
    for name in ("experiment", "campaign", "request", "operations"):
        url = pages(round_)[name]
        full = client.get(url).content.decode()
        assert 'data-refresh-url="' + url + '?partial=1"' in full
        part = client.get(url, {"partial": "1"}).content.decode()
        assert "<html" not in part and "<section" in part, name


def test_pages_keep_to_the_content_security_policy(client, operator, round_):
    client.force_login(operator)
    for name, url in pages(round_).items():
        response = client.get(url)
        assert "script-src 'self'" in response["Content-Security-Policy"]
        html = response.content.decode()
        assert not re.search(r"\sstyle=", html), name
        assert not re.search(r"<script(?![^>]*\ssrc=)", html), name
        assert not re.search(r"\son[a-z]+=", html), name


def test_the_job_log_shows_the_tail_of_its_files(client, operator, round_, tmp_path):
    job = Job.objects.filter(stage__campaign=round_).first()
    (tmp_path / "stderr.log").write_text("x" * 100_000 + "\nKilled: out of memory\n")
    Job.objects.filter(pk=job.pk).update(workdir=str(tmp_path))
    client.force_login(operator)
    page = client.get(reverse("monitoring:job_log", args=[job.pk])).content.decode()
    assert "Killed: out of memory" in page
    assert "x" * 70_000 not in page  # only the tail
    assert "Not readable here" in page  # no stdout.log

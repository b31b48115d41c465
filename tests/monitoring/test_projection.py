"""The scheduler's projection as a read model (campaigns/services/projection.py): the pages
read the one the worker stored for the current data version instead of projecting on
their own; a new data version or an age beyond ``OPOS_PROJECTION_S`` makes a new one;
with ``OPOS_PROJECTION_S = 0`` every page projects, as before."""

import datetime as dt

import pytest
from django.core.cache import cache
from django.urls import reverse

from campaigns.models import Campaign
from campaigns.services import projection
from monitoring.services import tracking
from monitoring.tasks import refresh_projection_task
from tests.campaigns.factories import approved_request

pytestmark = pytest.mark.django_db

PAGES = ("overview", "dashboard", "campaign page", "campaign list", "progress API")


@pytest.fixture(autouse=True)
def _read_model_on(settings):
    settings.OPOS_PROJECTION_S = 60
    cache.clear()


@pytest.fixture
def computed(monkeypatch):
    """How many projections were computed; any page projecting on its own fails."""
    calls = []
    real = projection.compute

    def counting(version, requests):
        calls.append(requests)
        return real(version, requests)

    monkeypatch.setattr(projection, "compute", counting)

    def refuse(*args, **kwargs):
        raise AssertionError("a page projected on its own instead of reading the read model")

    import campaigns.services.overview as overview
    import campaigns.views.campaigns as campaign_views

    for module in (overview, campaign_views):
        monkeypatch.setattr(module, "load_inputs", refuse)
    monkeypatch.setattr(overview, "decide", refuse)
    # The monitoring pages load the scheduler's input only to project an unscheduled
    # request the worker has not projected yet: counted.
    real_load = tracking.load_inputs

    def loading(*args, **kwargs):
        calls.append("request")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(tracking, "load_inputs", loading)
    return calls


def urls(campaign) -> dict[str, str]:
    return {
        "overview": reverse("monitoring:experiment", args=[campaign.experiment.slug]),
        "dashboard": reverse("monitoring:campaign", args=[campaign.pk]),
        "campaign page": reverse("campaigns:detail", args=[campaign.pk]),
        "campaign list": reverse("campaigns:list"),
        "progress API": f"/api/v1/campaigns/{campaign.pk}/progress/",
    }


def test_every_page_reads_one_projection_of_the_data_version(
    client, operator, round_, experiment, computed
):
    waiting = approved_request(experiment)  # forecast "if scheduled now"
    client.force_login(operator)
    for name in PAGES:
        response = client.get(urls(round_)[name])
        assert response.status_code == 200, name
    # Once, by the first page (without every request's part), and the waiting request's
    # forecast once, by the first page that shows it.
    assert computed == [False, "request"]
    shared = projection.shared()
    assert round_.pk in shared.campaigns
    summary, stages = shared.decision(round_.pk)
    assert summary.campaign_id == round_.pk
    assert stages and all(s.campaign_id == round_.pk for s in stages.values())
    # The page's own unscheduled request was projected once and stored for the others.
    assert waiting.pk in shared.requests([waiting], lambda: pytest.fail("stored already"))
    overview = client.get(urls(round_)["overview"]).content.decode()
    assert waiting.number in overview
    assert computed == [False, "request"]


def test_the_worker_computes_every_part_once_per_version_and_half_period(
    round_, experiment, computed, monkeypatch
):
    waiting = approved_request(experiment)
    report = refresh_projection_task()
    assert report["computed"] is True and report["requests"] == 1
    assert refresh_projection_task() == {"computed": False}  # fresh: nothing to do
    assert computed == [True]
    # A page finds every part without computing, the unscheduled request's forecast too.
    shared = projection.shared()
    assert shared.requests([waiting], lambda: pytest.fail("the worker's"))[waiting.pk]
    assert computed == [True]
    # Past half the period the worker computes it again, before any page would have to.
    later = projection.time.time() + 31
    monkeypatch.setattr(projection.time, "time", lambda: later)
    assert refresh_projection_task()["computed"] is True
    assert computed == [True, True]


def test_the_worker_completes_what_a_page_computed(round_, computed):
    projection.shared()  # a page, first for this version: the campaigns' part only
    assert refresh_projection_task()["computed"] is True
    assert computed == [False, True]


def test_a_new_data_version_gets_a_new_projection(
    round_, computed, django_capture_on_commit_callbacks
):
    assert projection.shared().campaigns[round_.pk].deadline == round_.deadline_at
    later = round_.deadline_at + dt.timedelta(days=7)
    with django_capture_on_commit_callbacks(execute=True):
        Campaign.objects.filter(pk=round_.pk).update(
            deadline=round_.deadline + dt.timedelta(days=7)
        )
        # Until the write commits, the version and its projection stay.
        assert projection.shared().campaigns[round_.pk].deadline == round_.deadline_at
    # Committed: the version moved (common/pagecache.py), and the projection with it.
    assert projection.shared().campaigns[round_.pk].deadline == later
    assert computed == [False, False]


def test_one_older_than_the_period_is_not_used(round_, computed, monkeypatch):
    projection.shared()
    later = projection.time.time() + 61
    monkeypatch.setattr(projection.time, "time", lambda: later)
    projection.shared()
    assert computed == [False, False]


def test_off_every_page_projects_on_its_own(settings, client, operator, round_, monkeypatch):
    settings.OPOS_PROJECTION_S = 0
    monkeypatch.setattr(projection, "compute", lambda *a: pytest.fail("no read model when off"))
    client.force_login(operator)
    for name in PAGES:
        assert client.get(urls(round_)[name]).status_code == 200, name
    assert projection.shared() is None
    assert refresh_projection_task() == {"computed": False}


def test_a_part_the_cache_lost_is_projected_again(round_, computed):
    shared = projection.shared()
    cache.delete(projection._key(shared.version, f"decision:{round_.pk}"))
    summary, stages = shared.decision(round_.pk)
    assert summary.campaign_id == round_.pk
    assert stages
    assert computed == [False, False]

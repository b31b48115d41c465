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

    def counting():
        calls.append(1)
        return real()

    monkeypatch.setattr(projection, "compute", counting)

    def refuse(*args, **kwargs):
        raise AssertionError("a page projected on its own instead of reading the read model")

    import campaigns.services.overview as overview
    import campaigns.views.campaigns as campaign_views

    for module in (tracking, overview, campaign_views):
        monkeypatch.setattr(module, "load_inputs", refuse)
    monkeypatch.setattr(overview, "decide", refuse)
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
    assert len(computed) == 1
    shared = projection.shared()
    assert round_.pk in shared.campaigns
    assert waiting.pk in shared.requests
    assert shared.decision.campaigns[round_.pk].campaign_id == round_.pk
    # What the pages show comes from it: the overview's forecast of the waiting request.
    overview = client.get(urls(round_)["overview"]).content.decode()
    assert waiting.number in overview
    assert len(computed) == 1


def test_the_worker_computes_it_once_per_version_and_half_period(round_, computed, monkeypatch):
    assert refresh_projection_task()["computed"] is True
    assert refresh_projection_task() == {"computed": False}  # fresh: nothing to do
    assert len(computed) == 1
    # A page finds it without computing.
    assert projection.shared() is not None and len(computed) == 1
    # Past half the period the worker computes it again, before any page would have to.
    later = projection.time.time() + 31
    monkeypatch.setattr(projection.time, "time", lambda: later)
    assert refresh_projection_task()["computed"] is True
    assert len(computed) == 2


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
    assert len(computed) == 2


def test_one_older_than_the_period_is_not_used(round_, computed, monkeypatch):
    projection.shared()
    later = projection.time.time() + 61
    monkeypatch.setattr(projection.time, "time", lambda: later)
    projection.shared()
    assert len(computed) == 2


def test_off_every_page_projects_on_its_own(settings, client, operator, round_, monkeypatch):
    settings.OPOS_PROJECTION_S = 0
    monkeypatch.setattr(projection, "compute", lambda: pytest.fail("no read model when off"))
    client.force_login(operator)
    for name in PAGES:
        assert client.get(urls(round_)[name]).status_code == 200, name
    assert projection.shared() is None
    assert refresh_projection_task() == {"computed": False}

"""The page cache (common/pagecache.py) on the five pages of benchmark 3: a hit answers
exactly what a miss did, with few queries; visibility is checked before the cache; each
write path shows at once; the viewer's own CSRF token is on every cached page; with
``OPOS_PAGE_CACHE_S = 0`` nothing is cached."""

import datetime as dt
import re

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns.models import BatchControl, ControlState, Job
from campaigns.services import campaign_action
from common import pagecache
from monitoring.services import record_snapshots
from requests_app.models import ProductionRequest
from requests_app.services.transitions import system_transition, transition
from tests.factories import UserFactory, grant

from .builders import planned_campaign, set_progress

pytestmark = pytest.mark.django_db

NOW = 1_900_000_000.0  # the clock of the buckets, pinned: no test runs across a bucket


@pytest.fixture(autouse=True)
def _cache_on(settings, monkeypatch):
    settings.OPOS_PAGE_CACHE_S = 30
    settings.OPOS_VIEWER_CACHE = True  # as deployed: the viewer too (experiments/viewers.py)
    monkeypatch.setattr(pagecache, "_clock", lambda: NOW)


@pytest.fixture
def round_(round_, liaison):
    """The monitoring tests' round, with the experiment's liaison already a member."""
    return round_


def urls(campaign) -> dict[str, str]:
    return {
        "dashboard": reverse("monitoring:campaign", args=[campaign.pk]),
        "dashboard partial": reverse("monitoring:campaign", args=[campaign.pk]) + "?partial=1",
        "campaign page": reverse("campaigns:detail", args=[campaign.pk]),
        "overview": reverse("monitoring:experiment", args=[campaign.experiment.slug]),
        "request list API": "/api/v1/requests/",
        "progress API": f"/api/v1/campaigns/{campaign.pk}/progress/",
    }


def page_keys() -> list[str]:
    """The page cache's entries, in the in-process cache or in Redis (CACHE_URL)."""
    store = cache._cache
    if isinstance(store, dict):  # LocMemCache
        return sorted(k for k in store if ":opos:page:" in k)
    keys = store.get_client().keys("*:opos:page:*")  # RedisCache
    return sorted(k.decode() for k in keys)


def without_tokens(body: bytes) -> bytes:
    """A page with its CSRF tokens blanked: they are masked anew on every request; and the
    time of the refresh status, rendered for each request (two requests may straddle a
    second)."""
    body = re.sub(rb"data-refresh-status>Updated \d\d:\d\d:\d\d", b"UPDATED", body)
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"TOKEN", body)


def test_a_hit_answers_exactly_what_the_miss_did_for_each_page_and_role(
    client, operator, liaison, round_
):
    for user in (operator, liaison):
        client.force_login(user)
        for name, url in urls(round_).items():
            cache.clear()
            miss = client.get(url)
            assert miss.status_code == 200, (name, user)
            keys = page_keys()
            assert len(keys) == 1, (name, keys)
            hit = client.get(url)
            assert page_keys() == keys, name
            assert without_tokens(hit.content) == without_tokens(miss.content), (name, user)
            assert hit["Content-Type"] == miss["Content-Type"], name


def test_roles_see_their_own_version_of_the_dashboard_and_the_campaign_page(
    client, operator, liaison, round_
):
    page = urls(round_)["dashboard"]
    client.force_login(operator)
    ops = client.get(page).content.decode()
    client.force_login(liaison)
    member = client.get(page).content.decode()
    assert "Stuck work" in ops and "Stuck work" not in member
    plan = urls(round_)["campaign page"]
    client.force_login(operator)
    # The operator's edit card (its heading names what it changes).
    assert 'id="change-heading"' in client.get(plan).content.decode()
    client.force_login(liaison)
    member_plan = client.get(plan).content.decode()
    assert 'id="change-heading"' not in member_plan
    assert "csrfmiddlewaretoken" in member_plan  # the sign-out form of the shell alone
    assert member_plan.count("csrfmiddlewaretoken") == 1


def test_another_experiments_liaison_is_refused_even_when_the_page_is_cached(
    client, api, liaison, other_liaison, round_
):
    client.force_login(liaison)
    for url in urls(round_).values():
        assert client.get(url).status_code == 200
    cached = len(page_keys())
    client.force_login(other_liaison)
    for name, url in urls(round_).items():
        response = client.get(url)
        if name == "request list API":
            assert response.json()["count"] == 0  # none of DUNE's requests
        else:
            assert response.status_code == 404, name
    # The refusals never reached the cache; the list is the other liaison's own entry.
    assert len(page_keys()) == cached + 1
    other = api(other_liaison)
    assert other.get(urls(round_)["progress API"]).status_code == 404


def test_a_physicist_gets_the_list_without_a_liaisons_actions(api, liaison, experiment, round_):
    physicist = grant(UserFactory(username="phys2"), "physicist", experiment)
    first = api(liaison).get("/api/v1/requests/").json()
    second = api(physicist).get("/api/v1/requests/").json()
    assert [r["number"] for r in first["results"]] == [r["number"] for r in second["results"]]
    assert any(r["allowed_actions"] for r in first["results"])  # liaisons may cancel
    assert not any(r["allowed_actions"] for r in second["results"])


def test_the_query_string_is_part_of_the_key(api, operator, round_):
    client = api(operator)
    everything = client.get("/api/v1/requests/").json()
    state = everything["results"][0]["state"]
    assert client.get(f"/api/v1/requests/?state={state}").json()["count"] == 2
    assert everything["count"] == 2
    assert client.get("/api/v1/requests/?state=draft").json()["count"] == 0
    reordered = client.get("/api/v1/requests/?page_size=1&page=2").json()
    assert client.get("/api/v1/requests/?page=2&page_size=1").json() == reordered
    assert len(reordered["results"]) == 1
    assert client.get("/api/v1/requests/?page=9").status_code == 404  # never cached


def test_a_hit_runs_few_queries(client, api, operator, round_):
    """Figures (SQLite and PostgreSQL): a hit of a page runs the visibility check (the
    object the page is about) and, on the API, the token's check: 1-2 queries, against
    13-21 for a miss. The
    session (with CACHE_URL), the user and the roles come from the cache."""
    client.force_login(operator)
    token = api(operator)
    for name, url in urls(round_).items():
        getter = token if "API" in name else client
        cache.clear()  # the full dashboard and its partial share their live region
        with CaptureQueriesContext(connection) as miss:
            getter.get(url)
        with CaptureQueriesContext(connection) as hit:
            getter.get(url)
        # The session is a query only without CACHE_URL (then in the database alone).
        queries = [q["sql"] for q in hit.captured_queries if "django_session" not in q["sql"]]
        assert len(queries) <= 2, (name, queries)
        assert len(hit) < len(miss), name


def test_a_request_transition_shows_at_once(
    client, operator, round_, django_capture_on_commit_callbacks
):
    client.force_login(operator)
    request = round_.links.first().request
    system_transition(request.pk, "start", note="first job running")
    before = {name: client.get(url).content for name, url in urls(round_).items()}
    assert b"On hold" not in before["dashboard"]
    with django_capture_on_commit_callbacks(execute=True):
        transition(request, "hold", operator, note="Account permission problem.")
    after = client.get(urls(round_)["dashboard"]).content.decode()
    assert "On hold" in after
    assert "On hold" in client.get(urls(round_)["overview"]).content.decode()
    assert "On hold" in client.get(urls(round_)["campaign page"]).content.decode()
    listed = client.get("/api/v1/requests/").json()["results"]
    assert {r["number"]: r["state"] for r in listed}[request.number] == "on_hold"


def test_a_campaign_transition_shows_at_once(
    client, operator, round_, django_capture_on_commit_callbacks
):
    client.force_login(operator)
    for url in urls(round_).values():
        client.get(url)
    with django_capture_on_commit_callbacks(execute=True):
        campaign_action(round_, "pause", operator, "site downtime")
    for name in ("dashboard", "campaign page", "overview"):
        page = client.get(urls(round_)[name]).content.decode()
        assert "cstate-paused" in page, name


def test_a_poll_write_shows_once_it_bumps(
    client, api, operator, round_, django_capture_on_commit_callbacks
):
    client.force_login(operator)
    progress = api(operator)
    assert "40.0%" in client.get(urls(round_)["dashboard"]).content.decode()
    assert progress.get(urls(round_)["progress API"]).json()["percent"] == 40.0
    # The poller writes the counters; until its bump the pages are the cached ones ...
    set_progress(round_, 0.5, running=4)
    assert "40.0%" in client.get(urls(round_)["dashboard"]).content.decode()
    # ... and its bump, after its commit, shows the new figures at once.
    with django_capture_on_commit_callbacks(execute=True):
        pagecache.bump_data_version()
    assert "50.0%" in client.get(urls(round_)["dashboard"]).content.decode()
    assert progress.get(urls(round_)["progress API"]).json()["percent"] == 50.0


def test_the_batch_systems_answer_to_a_control_shows_at_once(
    client, operator, round_, django_capture_on_commit_callbacks
):
    """The campaign page's count of pending and failed controls is part of its cached
    fragment: the poller's record of an answer is a write like any other, so it shows at
    once."""
    client.force_login(operator)
    page = urls(round_)["campaign page"]
    assert "none pending" in client.get(page).content.decode()
    job = Job.objects.filter(stage__campaign=round_).first()
    with django_capture_on_commit_callbacks(execute=True):
        control = BatchControl.objects.create(campaign=round_, job=job, action="hold")
    assert "1 pending" in client.get(page).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        BatchControl.objects.filter(pk=control.pk).update(state=ControlState.FAILED)
    assert "1 failed" in client.get(page).content.decode()


def test_a_new_snapshot_shows_at_once(api, operator, round_, django_capture_on_commit_callbacks):
    client = api(operator)
    before = client.get(urls(round_)["progress API"]).json()["snapshots"]
    with django_capture_on_commit_callbacks(execute=True):
        report = record_snapshots(timezone.now() + dt.timedelta(minutes=10))
    assert report.campaigns == 1
    after = client.get(urls(round_)["progress API"]).json()["snapshots"]
    assert len(after) == len(before) + 1


def test_a_rolled_back_write_does_not_bump(operator, round_, django_capture_on_commit_callbacks):
    version = pagecache.data_version()
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        campaign_action(round_, "pause", operator, "site downtime")
        raise RuntimeError("the caller's transaction fails after the action")
    assert pagecache.data_version() == version
    round_.refresh_from_db()
    assert round_.state == "active"


def test_an_operators_cached_page_carries_that_operators_own_token(operator, round_):
    first = Client(enforce_csrf_checks=True)
    first.force_login(operator)
    first.get(urls(round_)["campaign page"])  # the miss fills the cache
    second_operator = grant(UserFactory(username="op2"), "operator")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(second_operator)
    keys = page_keys()
    page = browser.get(urls(round_)["campaign page"]).content.decode()
    assert page_keys() == keys  # a hit
    assert "op2" in page and ">op ·" not in page  # the shell is the viewer's
    form = re.search(
        r'<form method="post" action="([^"]+)" class="inline">\s*'
        r'<input type="hidden" name="csrfmiddlewaretoken" value="([^"]+)">\s*'
        r'<input type="hidden" name="action" value="pause">',
        page,
    )
    assert form, "the pause form with its token"
    action, token = form.groups()
    response = browser.post(action, {"csrfmiddlewaretoken": token, "action": "pause"})
    assert response.status_code == 302
    round_.refresh_from_db()
    assert round_.state == "paused"
    # A token from someone else's page is refused.
    assert browser.post(action, {"csrfmiddlewaretoken": "x" * 64}).status_code == 403


def test_the_remove_forms_of_a_cached_page_work(
    operator, experiment, django_capture_on_commit_callbacks
):
    campaign = planned_campaign(experiment, operator, requests=1, name="planned")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(operator)
    url = urls(campaign)["campaign page"]
    browser.get(url)
    page = browser.get(url).content.decode()  # a hit
    request = campaign.links.first().request
    form = re.search(
        rf'<form id="remove-{request.pk}" method="post" action="([^"]+)" hidden>'
        r'<input type="hidden" name="csrfmiddlewaretoken" value="([^"]+)">'
        rf'<input type="hidden" name="request" value="{request.pk}"></form>',
        page,
    )
    assert form
    assert (
        f'name="reason" placeholder="Reason (required)" class="note" form="remove-{request.pk}"'
        in page
    )
    action, token = form.groups()
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(
            action, {"csrfmiddlewaretoken": token, "request": request.pk, "reason": "later"}
        )
    assert response.status_code == 302
    assert ProductionRequest.objects.get(pk=request.pk).state == "approved"
    assert f'id="remove-{request.pk}"' not in browser.get(url).content.decode()


def test_pages_say_when_their_figures_were_computed(client, operator, round_):
    client.force_login(operator)
    for name in ("dashboard", "overview", "campaign page"):
        page = client.get(urls(round_)[name]).content.decode()
        assert re.search(r'class="as-of muted small">Figures as of \d\d:\d\d:\d\d\.', page), name


def test_the_clock_bucket_ends_a_fragment(client, operator, round_, monkeypatch):
    client.force_login(operator)
    url = urls(round_)["overview"]
    client.get(url)
    keys = set(page_keys())
    monkeypatch.setattr(pagecache, "_clock", lambda: NOW + 30)
    client.get(url)
    assert len(set(page_keys()) - keys) == 1


def test_with_no_seconds_nothing_is_cached(client, api, operator, round_, settings):
    settings.OPOS_PAGE_CACHE_S = 0
    client.force_login(operator)
    for url in urls(round_).values():
        assert client.get(url).status_code == 200
    assert page_keys() == []
    set_progress(round_, 0.5, running=4)  # no bump: seen anyway
    assert "50.0%" in client.get(urls(round_)["dashboard"]).content.decode()

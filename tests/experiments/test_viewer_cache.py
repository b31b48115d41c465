"""The viewer cache (experiments/viewers.py): the signed-in user and their roles come from
the cache, yet a revocation, a deactivation, a password change, a sign-out or a revoked
token takes effect on the very next request, and CSRF and the sign-in lockout still hold."""

import re

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from common import pagecache
from experiments import viewers
from experiments.models import GlobalRole, Membership
from tests.factories import UserFactory, grant

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _viewer_cache_on(settings):
    settings.OPOS_VIEWER_CACHE = True


@pytest.fixture
def overview(experiment):
    return reverse("monitoring:experiment", args=[experiment.slug])


def signed_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def committed(capture, write):
    """Run ``write`` and its on-commit callbacks (the version bumps), as a commit would."""
    with capture(execute=True):
        return write()


def test_a_cached_viewer_runs_no_query_for_the_user_or_roles(liaison, overview):
    client = signed_in(liaison)
    assert client.get(overview).status_code == 200  # fills the viewer's entry
    with CaptureQueriesContext(connection) as hit:
        assert client.get(overview).status_code == 200
    sql = " ".join(q["sql"] for q in hit.captured_queries)
    assert "auth_user" not in sql
    assert "requests_app_membership" not in sql and "requests_app_globalrole" not in sql
    assert cache.get(viewers.entry_key(liaison.pk)) is not None


def test_a_membership_removed_takes_effect_on_the_next_request(
    liaison, overview, django_capture_on_commit_callbacks
):
    client = signed_in(liaison)
    assert client.get(overview).status_code == 200
    assert client.get(overview).status_code == 200  # from the cache
    committed(
        django_capture_on_commit_callbacks,
        lambda: Membership.objects.filter(user=liaison).delete(),
    )
    assert client.get(overview).status_code == 404


def test_a_global_role_revoked_takes_effect_on_the_next_request(
    operator, django_capture_on_commit_callbacks
):
    client = signed_in(operator)
    triage = reverse("requests:triage")
    assert client.get(triage).status_code == 200
    assert client.get(triage).status_code == 200
    committed(
        django_capture_on_commit_callbacks,
        lambda: GlobalRole.objects.filter(user=operator).delete(),
    )
    assert client.get(triage).status_code == 403


def test_a_role_granted_takes_effect_on_the_next_request(
    experiment, overview, django_capture_on_commit_callbacks
):
    newcomer = UserFactory(username="newcomer")
    client = signed_in(newcomer)
    assert client.get(overview).status_code == 404
    committed(django_capture_on_commit_callbacks, lambda: grant(newcomer, "physicist", experiment))
    assert client.get(overview).status_code == 200


def test_a_deactivated_account_is_signed_out_on_the_next_request(
    liaison, overview, django_capture_on_commit_callbacks
):
    client = signed_in(liaison)
    assert client.get(overview).status_code == 200

    def deactivate():
        liaison.is_active = False
        liaison.save()

    committed(django_capture_on_commit_callbacks, deactivate)
    assert client.get(overview).status_code == 302  # to the sign-in page


def test_a_password_changed_elsewhere_ends_the_other_sessions(
    liaison, overview, django_capture_on_commit_callbacks
):
    client = signed_in(liaison)
    assert client.get(overview).status_code == 200

    def change_password():
        liaison.set_password("a new one, long enough")
        liaison.save()

    committed(django_capture_on_commit_callbacks, change_password)
    response = client.get(overview)
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_a_stale_entry_is_never_used_even_if_the_bump_was_lost(liaison, overview):
    # The entry carries the version it was read under: any other version is a miss.
    client = signed_in(liaison)
    assert client.get(overview).status_code == 200
    version, user = cache.get(viewers.entry_key(liaison.pk))
    user._opos_experiment_roles = {}  # what a stale entry would say
    cache.set(viewers.entry_key(liaison.pk), (version - 1, user))
    assert client.get(overview).status_code == 200  # read again from the database
    assert cache.get(viewers.entry_key(liaison.pk))[0] == version


def test_sign_out_ends_the_session(liaison, overview):
    client = signed_in(liaison, enforce_csrf_checks=True)
    page = client.get(overview).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert client.post(reverse("logout"), {"csrfmiddlewaretoken": token}).status_code == 302
    assert client.get(overview).status_code == 302
    # Nor does the old cookie come back: the session is gone from the cache and the table.
    assert client.get(overview).status_code == 302


def test_csrf_is_still_checked(operator, overview, experiment):
    client = signed_in(operator, enforce_csrf_checks=True)
    page = client.get(overview).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert client.post(reverse("logout"), {"csrfmiddlewaretoken": "x" * 64}).status_code == 403
    assert client.post(reverse("logout"), {"csrfmiddlewaretoken": token}).status_code == 302


def test_the_sign_in_lockout_still_holds(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(username="victim")
    login = reverse("login")
    for _ in range(3):
        client.post(login, {"username": "victim", "password": "wrong"})
    assert client.post(login, {"username": "victim", "password": "pw"}).status_code == 429
    assert client.get(reverse("requests:home")).status_code == 302  # not signed in


def test_a_token_revoked_is_refused_at_once_and_roles_come_from_the_cache(
    api, liaison, django_capture_on_commit_callbacks
):
    client = api(liaison)
    assert client.get("/api/v1/requests/").status_code == 200
    with CaptureQueriesContext(connection) as hit:
        assert client.get("/api/v1/requests/").status_code == 200
    sql = " ".join(q["sql"] for q in hit.captured_queries)
    assert "requests_app_membership" not in sql and "requests_app_globalrole" not in sql
    from knox.models import AuthToken

    AuthToken.objects.filter(user=liaison).delete()
    assert client.get("/api/v1/requests/").status_code == 401


def test_the_entry_prefetches_the_data_version_for_the_page_cache(
    liaison, overview, settings, monkeypatch
):
    settings.OPOS_PAGE_CACHE_S = 30
    monkeypatch.setattr(pagecache, "_clock", lambda: 1_900_000_000.0)
    client = signed_in(liaison)
    client.get(overview)
    trips: list[list[str]] = []  # one list of keys per call to the cache
    real_get, real_get_many = cache.get, cache.get_many
    inside = []

    def get(key, *args, **kwargs):
        if not inside:
            trips.append([key])
        return real_get(key, *args, **kwargs)

    def get_many(keys, *args, **kwargs):
        trips.append(list(keys))
        inside.append(1)
        try:
            return real_get_many(keys, *args, **kwargs)
        finally:
            inside.pop()

    monkeypatch.setattr(cache, "get", get)
    monkeypatch.setattr(cache, "get_many", get_many)
    assert client.get(overview).status_code == 200
    # Besides the session (in the cache with CACHE_URL): the viewer with both versions,
    # then the page's fragment.
    trips = [keys for keys in trips if not keys[0].startswith("django.contrib.sessions")]
    assert [pagecache.VERSION_KEY in keys for keys in trips].count(True) == 1
    assert len(trips) == 2, trips


def test_with_the_cache_off_django_reads_the_user(liaison, overview, settings):
    settings.OPOS_VIEWER_CACHE = False
    client = signed_in(liaison)
    client.get(overview)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(overview).status_code == 200
    assert any("auth_user" in q["sql"] for q in queries.captured_queries)

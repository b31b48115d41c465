"""The site's defences: CSRF on every form, a content security policy with no inline code,
login throttling on both doors, argon2, job parameters as data, and the audit trail.

(``manage.py check --deploy`` with production settings: tests/opos/test_settings.py; no
shell strings: tests/opos/test_no_shell.py.)
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from campaigns.execution import submission
from campaigns.execution.wrapper import load_description
from campaigns.models import Job
from experiments.models import AuditEvent
from experiments.services import grant_role
from requests_app.models import Transition
from requests_app.services import transition
from tests.campaigns.exec_support import exec_env, fake_backend  # noqa: F401 (fixtures)
from tests.security.routes import walk
from tests.security.test_authorisation_matrix import OK, SPECS

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(settings, shared_world):
    cache.clear()
    return shared_world


def page_as(world, role, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(world.users[role])
    return client


def page_urls(world, role) -> list[str]:
    """Every page (not API, not admin) that answers ``role`` with 200, reversed from SPECS."""
    urls = []
    for route in walk():
        spec = SPECS.get(route.name)
        if spec is None or route.pattern.startswith(("api/", "admin/")) or spec.get is None:
            continue
        if spec.get.get(role) == OK:
            urls.append(reverse(route.name, kwargs=spec.kwargs(world)) + spec.query)
    return urls


class Page(HTMLParser):
    """What a page holds that matters here: its POST forms and any inline code."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self.inline: list[str] = []
        self._script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and (attrs.get("method") or "get").lower() == "post":
            self.forms.append({"action": attrs.get("action") or "", "token": False})
        if tag == "input" and attrs.get("name") == "csrfmiddlewaretoken" and self.forms:
            self.forms[-1]["token"] = True
        if tag == "script" and not attrs.get("src") and attrs.get("type") != "application/json":
            self._script = True
        if tag == "style":
            self.inline.append("<style> element")
        for name in attrs:
            if name == "style" or name.startswith("on"):
                self.inline.append(f"<{tag} {name}=...>")

    def handle_data(self, data):
        if self._script and data.strip():
            self.inline.append(f"<script>{data.strip()[:60]}")

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = False


@pytest.mark.parametrize("role", ["operator", "liaison_a"])
def test_every_post_form_carries_a_token_and_is_refused_without_it(world, role):
    seen: dict[str, str] = {}
    for url in page_urls(world, role):
        response = page_as(world, role).get(url)
        if "html" not in response.get("Content-Type", ""):
            continue
        page = Page()
        page.feed(response.content.decode())
        for form in page.forms:
            action = form["action"] or url.split("?")[0]
            assert form["token"], f"a POST form on {url} (to {action}) has no CSRF token"
            seen.setdefault(action, url)
    # The forms of requests, campaigns, records, reports ... (fewer for a liaison).
    assert len(seen) >= (10 if role == "operator" else 4), seen
    strict = page_as(world, role, enforce_csrf_checks=True)
    for action, page_url in seen.items():
        response = strict.post(action, {"note": "x", "body": "x", "action": "approve"})
        assert response.status_code == 403, f"{action} (form on {page_url}) took a POST"
    # ... and the same forms work with the token (the check is not refusing everything).
    assert page_as(world, role).post(reverse("logout")).status_code == 302


@pytest.mark.parametrize("role", ["operator", "liaison_a", "physicist_a"])
def test_pages_have_a_strict_csp_and_no_inline_code(world, role):
    checked = 0
    for url in [*page_urls(world, role), reverse("login"), reverse("api-docs")]:
        response = page_as(world, role).get(url)
        policy = response.get("Content-Security-Policy", "")
        assert "script-src 'self'" in policy, url
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, url
        if "html" not in response.get("Content-Type", ""):
            continue
        page = Page()
        page.feed(response.content.decode())
        assert not page.inline, f"{url}: {page.inline[:5]}"
        checked += 1
    assert checked >= 10


def test_api_token_endpoint_is_throttled(world):
    client = APIClient()
    answers = [
        client.post(
            "/api/v1/auth/token/", {"username": "secret-a-liaison", "password": f"guess{i}"}
        ).status_code
        for i in range(15)
    ]
    assert answers[0] == 400
    assert 429 in answers, answers
    assert answers[-1] == 429
    # ... while another client (another address) is not affected.
    other = APIClient(REMOTE_ADDR="10.0.0.9").post(
        "/api/v1/auth/token/", {"username": "x", "password": "y"}
    )
    assert other.status_code == 400


def test_browser_login_is_throttled_per_account(world):
    client = Client()
    for _ in range(10):
        client.post("/accounts/login/", {"username": "oper", "password": "wrong"})
    blocked = client.post("/accounts/login/", {"username": "oper", "password": "pw"})
    assert blocked.status_code == 429


def test_argon2_is_the_first_hasher():
    # The tests themselves hash with MD5 for speed (tests/conftest.py): read the real setting.
    import argon2  # noqa: F401  (installed with django[argon2])

    from opos import settings as production_settings

    assert production_settings.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")


@pytest.mark.usefixtures("exec_env")
def test_job_parameters_reach_the_job_only_as_validated_data(world, request, monkeypatch):
    """What the liaison typed is checked against the template, snapshotted at planning, and
    written to the job's JSON file; the command line is the fixed wrapper, nothing else."""
    fake = request.getfixturevalue("fake_backend")
    specs = []
    submit = fake.submit
    monkeypatch.setattr(
        fake, "submit", lambda spec, start=0: specs.append(spec) or submit(spec, start)
    )
    stage = world.a_stage
    assert stage.parameters == {"seed": 1}  # the template's default, validated at planning
    submission.submit_ready()
    assert specs, "nothing was submitted"
    for spec in specs:
        assert spec.argv[-2:] == ["-m", "campaigns.execution.wrapper"]
        assert not any("seed" in part for part in spec.argv)
        for element in range(spec.size):
            folder = spec.array_dir / str(element)
            folder.mkdir()  # as the job shim does when the element starts
            description = load_description(folder)
            assert (
                description["parameters"] == Job.objects.get(pk=description["job"]).stage.parameters
            )


# --- the audit trail ---------------------------------------------------------------------------


def test_role_grants_training_code_and_transitions_are_recorded(world):
    operator = world.users["operator"]
    before = AuditEvent.objects.count()
    grant_role("newcomer", "physicist", world.b.slug, actor=operator)
    grant = AuditEvent.objects.latest("id")
    assert (grant.action, grant.actor, grant.experiment) == ("grant_role", operator, world.b)
    assert AuditEvent.objects.filter(action="record_training", experiment=world.a).exists()
    assert AuditEvent.objects.count() == before + 1
    # Every request transition is in the request's log with actor, states and note.
    count = Transition.objects.filter(request=world.a_request).count()
    transition(world.a_request, "request_info", operator, "which flux?")
    last = Transition.objects.filter(request=world.a_request).latest("id")
    assert (last.action, last.from_state, last.to_state, last.actor, last.note) == (
        "request_info",
        "submitted",
        "needs_info",
        operator,
        "which flux?",
    )
    assert Transition.objects.filter(request=world.a_request).count() == count + 1


def test_sla_and_role_changes_in_the_admin_are_recorded(world):
    admin = page_as(world, "admin")
    url = reverse("admin:experiments_experiment_change", args=[world.b.pk])
    form = admin.get(url).context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items()}
    data.update(
        {
            "sla_accepted_on": "2026-02-02",
            "sla_reference": "SLA-BRAVO-2",
            "groups-TOTAL_FORMS": 0,
            "groups-INITIAL_FORMS": 0,
            "members-TOTAL_FORMS": 0,
            "members-INITIAL_FORMS": 0,
        }
    )
    response = admin.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    event = AuditEvent.objects.latest("id")
    assert event.action == "admin_change_experiment"
    assert event.experiment == world.b
    assert event.data["changed"]["sla_reference"] == "SLA-BRAVO-2"
    # A global role granted in the admin is recorded too.
    add = admin.post(
        reverse("admin:experiments_globalrole_add"),
        {"user": world.users["liaison_b"].pk, "role": "operator"},
    )
    assert add.status_code == 302
    assert AuditEvent.objects.latest("id").action == "admin_add_globalrole"


def test_operators_read_the_audit_trail_and_nobody_writes_it(world):
    operator = APIClient()
    operator.credentials(HTTP_AUTHORIZATION=f"Token {world.token('operator')}")
    listing = operator.get("/api/v1/audit/?action=record_training")
    assert listing.status_code == 200
    assert {e["experiment"] for e in listing.json()["results"]} == {world.a.slug, world.b.slug}
    one = listing.json()["results"][0]["id"]
    for method in ("post", "put", "patch", "delete"):
        assert getattr(operator, method)("/api/v1/audit/", {}).status_code == 405
        assert getattr(operator, method)(f"/api/v1/audit/{one}/", {}).status_code == 405
    assert AuditEvent.objects.filter(pk=one).exists()
    member = APIClient()
    member.credentials(HTTP_AUTHORIZATION=f"Token {world.token('liaison_a')}")
    assert member.get("/api/v1/audit/").status_code == 403
    page = page_as(world, "operator").get("/audit/?q=training")
    assert page.status_code == 200
    assert b"record_training" in page.content
    transitions = page_as(world, "operator").get("/audit/?log=transitions")
    assert world.a_request.number.encode() in transitions.content
    assert page_as(world, "physicist_a").get("/audit/").status_code == 403

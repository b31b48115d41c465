"""Sign-in lockout: the same account cannot be guessed at under another spelling or address.

django-axes counts failures per (username, client address). The username is counted as
sign-in reads it (trimmed, NFKC, case-folded) and the address believes X-Forwarded-For only
from configured proxies; the browser sign-in and the API token endpoint share the count.
"""

import pytest
from axes.models import AccessAttempt
from django.test import RequestFactory

from common.clientaddress import client_address
from experiments.models import AuditEvent
from requests_app.api.auth import ClientAddressThrottle
from requests_app.auth import normalise_username

LOGIN = "/accounts/login/"
TOKEN = "/api/v1/auth/token/"
FULL_WIDTH_V = "\uff56"  # FULLWIDTH LATIN SMALL LETTER V, NFKC-equal to "v"
SPELLINGS = ["victim", " victim  ", "VICTIM", f"{FULL_WIDTH_V}ictim", f"  {FULL_WIDTH_V}ICTIM\t"]


@pytest.fixture
def victim(db):
    from tests.factories import UserFactory

    return UserFactory(username="victim")


@pytest.fixture
def limit(settings):
    settings.AXES_FAILURE_LIMIT = 5
    return 5


def _browser(client, username, password, **headers):
    return client.post(LOGIN, {"username": username, "password": password}, **headers)


def _token(client, username, password, **headers):
    return client.post(TOKEN, {"username": username, "password": password}, **headers)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_counts_as_the_account(spelling):
    assert normalise_username(spelling) == "victim"


def test_sign_in_itself_accepts_the_variants_the_lockout_counts(client, victim):
    # Why the normalisation matters: Django's sign-in form strips and NFKC-normalises.
    for spelling in [" victim  ", f"{FULL_WIDTH_V}ictim"]:
        client.logout()
        assert _browser(client, spelling, "pw").status_code == 302


def test_browser_lockout_holds_for_every_spelling(client, victim, limit):
    for _ in range(limit):
        _browser(client, "victim", "wrong")
    for spelling in SPELLINGS:
        response = _browser(client, spelling, "pw")
        assert response.status_code == 429, spelling
        assert b"Too many failed sign-in attempts" in response.content
    assert "_auth_user_id" not in client.session


def test_failures_under_rotating_spellings_add_up(client, victim, limit):
    for n in range(limit):
        _browser(client, SPELLINGS[n % len(SPELLINGS)], "wrong")
    assert _browser(client, "victim", "pw").status_code == 429


def test_rotating_forwarded_header_gains_nothing_without_a_trusted_proxy(client, victim, limit):
    for n in range(limit * 3):
        _browser(client, "victim", "wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")
    response = _browser(client, "victim", "pw", HTTP_X_FORWARDED_FOR="198.51.100.250")
    assert response.status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


def test_token_endpoint_rotating_forwarded_header_is_locked_out(api, victim, limit):
    client = api()
    for n in range(limit):
        response = _token(client, "victim", "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
        assert response.status_code in (400, 429)
    response = _token(client, "victim", "pw", HTTP_X_FORWARDED_FOR="192.0.2.77")
    assert response.status_code == 429
    assert "token" not in response.json()
    assert "Too many failed sign-in attempts" in response.json()["detail"]


def test_token_endpoint_rate_limit_ignores_rotating_forwarded_header(api, db):
    # Besides the lockout, the endpoint takes LOGIN_THROTTLE_RATE (10/min) tries per
    # address, whatever the usernames: forty tries with forty forwarded addresses get 429s.
    client = api()
    answers = [
        _token(client, f"user{n}", "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code
        for n in range(40)
    ]
    assert answers[:10] == [400] * 10
    assert set(answers[10:]) == {429}


def test_token_endpoint_counts_spellings_together(api, victim, limit):
    client = api()
    for n in range(limit):
        _token(client, SPELLINGS[n % len(SPELLINGS)], "wrong")
    assert _token(client, "victim", "pw").status_code == 429


def test_browser_and_token_endpoint_share_the_count(client, api, victim, limit):
    for _ in range(limit - 1):
        _browser(client, "victim", "wrong")
    assert _token(api(), " VICTIM ", "wrong").status_code == 429
    assert _token(api(), "victim", "pw").status_code == 429
    assert _browser(client, "victim", "pw").status_code == 429


def test_lockout_is_per_address(client, victim, limit):
    for _ in range(limit):
        _browser(client, "victim", "wrong")
    assert _browser(client, "victim", "pw").status_code == 429
    # The account's owner elsewhere still signs in.
    assert _browser(client, "victim", "pw", REMOTE_ADDR="192.0.2.10").status_code == 302


def test_behind_a_trusted_proxy_the_forwarded_client_counts(client, victim, limit, settings):
    settings.OPOS_TRUSTED_PROXIES = ["10.0.0.0/24"]
    settings.OPOS_PROXY_HOPS = 1
    via_proxy = {"REMOTE_ADDR": "10.0.0.5"}
    # The attacker rotates what it sends; the proxy appends the real address last.
    for n in range(limit):
        _browser(
            client,
            "victim",
            "wrong",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}, 203.0.113.9",
            **via_proxy,
        )
    locked = _browser(
        client, "victim", "pw", HTTP_X_FORWARDED_FOR="192.0.2.1, 203.0.113.9", **via_proxy
    )
    assert locked.status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.9"}
    # Another client behind the same proxy is not locked out with it.
    other = _browser(client, "victim", "pw", HTTP_X_FORWARDED_FOR="203.0.113.10", **via_proxy)
    assert other.status_code == 302


def test_client_address_reading():
    factory = RequestFactory()

    def address(remote, forwarded=None, proxies=(), hops=0):
        from django.test import override_settings

        headers = {"REMOTE_ADDR": remote}
        if forwarded is not None:
            headers["HTTP_X_FORWARDED_FOR"] = forwarded
        with override_settings(OPOS_TRUSTED_PROXIES=list(proxies), OPOS_PROXY_HOPS=hops):
            return client_address(factory.get("/", **headers))

    # No proxy configured: the header is never read.
    assert address("192.0.2.1", "203.0.113.5") == "192.0.2.1"
    # A proxy configured, but this connection is not from it.
    assert address("192.0.2.1", "203.0.113.5", ["10.0.0.1"], 1) == "192.0.2.1"
    # From the proxy: the entry it appended, never the client's own further left.
    assert address("10.0.0.1", "1.2.3.4, 203.0.113.5", ["10.0.0.1"], 1) == "203.0.113.5"
    # Two proxies of ours: skip the inner one's entry.
    assert address("10.0.0.1", "1.2.3.4, 203.0.113.5, 10.0.0.2", ["10.0.0.0/24"], 2) == (
        "203.0.113.5"
    )
    # Fewer hops configured than entries: the client's own entries stay unread.
    assert address("10.0.0.1", "1.2.3.4, 10.0.0.2", ["10.0.0.0/24"], 1) == "10.0.0.2"
    # Garbage where an address belongs: the last address vouched for.
    assert address("10.0.0.1", "not-an-address", ["10.0.0.1"], 1) == "10.0.0.1"
    assert address("10.0.0.1", "", ["10.0.0.1"], 1) == "10.0.0.1"


def test_token_rate_limit_keys_on_the_client_address(rf):
    throttle = ClientAddressThrottle()
    idents = {
        throttle.get_ident(
            rf.post(TOKEN, REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR=f"1.1.1.{n}")
        )
        for n in range(5)
    }
    assert idents == {"192.0.2.1"}


# --- operators see and clear lockouts -----------------------------------------------------


def test_operators_see_and_clear_a_lockout(client, victim, operator, limit):
    for _ in range(limit):
        _browser(client, f" {FULL_WIDTH_V}ictim", "wrong")
    client.force_login(operator)
    page = client.get("/accounts/lockouts/")
    assert page.status_code == 200
    assert b"victim" in page.content and b"127.0.0.1" in page.content
    assert b"Locked until" in page.content and b"not locked" not in page.content
    cleared = client.post("/accounts/lockouts/", {"username": "victim", "ip_address": "127.0.0.1"})
    assert cleared.status_code == 302
    assert not AccessAttempt.objects.exists()
    event = AuditEvent.objects.get(action="clear_lockout")
    assert event.actor == operator and event.data["username"] == "victim"
    client.logout()
    assert _browser(client, "victim", "pw").status_code == 302


def test_clearing_nothing_records_nothing(client, operator):
    client.force_login(operator)
    client.post("/accounts/lockouts/", {"username": "nobody", "ip_address": "192.0.2.1"})
    assert not AuditEvent.objects.filter(action="clear_lockout").exists()


@pytest.mark.parametrize("role", ["liaison", "physicist"])
def test_members_cannot_see_or_clear_lockouts(client, victim, limit, role, request):
    for _ in range(limit):
        _browser(client, "victim", "wrong")
    client.force_login(request.getfixturevalue(role))
    assert client.get("/accounts/lockouts/").status_code == 403
    refused = client.post("/accounts/lockouts/", {"username": "victim", "ip_address": "127.0.0.1"})
    assert refused.status_code == 403
    assert AccessAttempt.objects.exists()


def test_admins_see_lockouts_in_the_admin(client, victim, admin_user, limit):
    for _ in range(limit):
        _browser(client, "victim", "wrong")
    client.force_login(admin_user)
    page = client.get("/admin/axes/accessattempt/")
    assert page.status_code == 200
    assert b"victim" in page.content

"""Sign-in: the lockout against password guessing (django-axes) and how it answers.

django-axes counts failed sign-ins per (username, client address) pair, in the database so
that operators see and clear lockouts (``/accounts/lockouts/``, or the admin). Two things
are ours: the username it counts is normalised the way sign-in reads it, and then case-folded,
so ``" victim "``, ``"VICTIM"`` and a full-width ``"\\uff56ictim"`` all count against ``victim``;
the client address believes ``X-Forwarded-For`` only from configured proxies
(``common.clientaddress``).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

LOCKED_OUT_MESSAGE = "Too many failed sign-in attempts. Wait a few minutes and try again."


def normalise_username(username: Any) -> str:
    """The key a username is counted under: stripped, NFKC-normalised, case-folded.

    Django's sign-in form strips the value and applies NFKC before looking the user up, so
    every spelling that can sign in as an account must count against that account.
    """
    if not isinstance(username, str):
        return ""
    text = unicodedata.normalize("NFKC", username).strip()
    # Case-folding can produce new compatibility forms (and vice versa): normalise again.
    return unicodedata.normalize("NFKC", text.casefold())[:150]


def lockout_username(request: HttpRequest | None, credentials: dict | None) -> str:
    """``AXES_USERNAME_CALLABLE``: the normalised username of an attempt."""
    field = "username"
    if credentials and field in credentials:
        return normalise_username(credentials.get(field))
    data = getattr(request, "data", None) or getattr(request, "POST", {})
    return normalise_username(data.get(field) if hasattr(data, "get") else None)


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: 429, as JSON for the API, as the sign-in page otherwise."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": LOCKED_OUT_MESSAGE}, status=429)
    # An unbound form: validating the posted one would try the credentials once more.
    form = AuthenticationForm(request, initial={"username": request.POST.get("username", "")})
    context = {"form": form, "next": request.POST.get("next", ""), "refusal": LOCKED_OUT_MESSAGE}
    return render(request, "registration/login.html", context, status=429)


def locked_out(request) -> bool:
    """Whether django-axes refused this request's sign-in (also for a DRF request, whose
    attributes live on the wrapper rather than on Django's request)."""
    return bool(getattr(request, "axes_locked_out", False))


class ThrottledLoginView(LoginView):
    """Django's sign-in page; django-axes refuses an account locked out from this address."""

    template_name = "registration/login.html"
    redirect_authenticated_user = True

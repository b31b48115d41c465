"""``/account/tokens/``: the signed-in user's API tokens, and revoking them.

Tokens are issued by ``opos login`` (``POST /api/v1/auth/token/``); this page lists the
user's own (key, issued, expires) and revokes one or all. It never shows a token: the
database does not have them.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from ..services import tokens


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request):
    if request.method == "POST":
        if request.POST.get("all") == "1":
            count = tokens.revoke_all(
                request.user, reason="revoked by the user", actor=request.user
            )
            messages.success(request, f"Revoked {count} token{'s' if count != 1 else ''}.")
        else:
            key = request.POST.get("key", "")[:25]
            if tokens.revoke(request.user, key):
                messages.success(request, f"Revoked token {key}….")
            else:
                messages.error(request, "key: no such token of yours (already revoked or expired).")
        return redirect("requests:tokens")
    context = {
        "tokens": tokens.tokens_of(request.user),
        "ttl_days": settings.OPOS_API_TOKEN_TTL_DAYS,
    }
    return render(request, "requests_app/token_list.html", context)

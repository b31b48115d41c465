"""``/accounts/lockouts/``: failed sign-ins and lockouts, for operators to see and clear."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from experiments.access import operator_required

from ..services.lockouts import clear_lockout, lockouts


@operator_required
@require_http_methods(["GET", "POST"])
def lockout_list(request):
    if request.method == "POST":
        username = request.POST.get("username", "")[:255]
        address = request.POST.get("ip_address", "")[:45]
        if clear_lockout(username, address, request.user):
            messages.success(request, f"Sign-in failures of {username} from {address} cleared.")
        else:
            messages.info(request, f"No sign-in failures of {username} from {address} to clear.")
        return redirect("lockouts")
    context = {
        "lockouts": lockouts(),
        "limit": settings.AXES_FAILURE_LIMIT,
        "cooloff": f"{int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)} minutes",
    }
    return render(request, "registration/lockouts.html", context)

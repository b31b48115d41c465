"""The sync-health page for operators: is the service desk in step with the tracker?"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from experiments.access import operator_required

from . import services
from .connector import ServiceDeskError


@operator_required
@require_http_methods(["GET", "HEAD"])
def health(request):
    """Last successful pull and push, the outbox, recent errors and links."""
    return render(request, "servicedesk/health.html", {"health": services.health()})


@operator_required
@require_POST
def run(request, what: str):
    """Operator buttons: pull every assigned ticket now, send pending pushes, retry failed ones."""
    try:
        if what == "pull":
            result = services.pull_tickets(full=True)
            messages.success(request, f"Pull: {result.summary()}.")
        elif what == "send":
            sent = services.sync_outbound()
            messages.success(
                request,
                f"Sent {sent.sent}, retrying {sent.retrying}, failed {sent.failed}."
                + (f" Stopped: {sent.stopped_on}" if sent.stopped_on else ""),
            )
        elif what == "retry":
            count = services.retry_failed_pushes()
            messages.success(request, f"{count} failed pushes are queued again.")
        else:
            raise PermissionDenied("Unknown action.")
    except ServiceDeskError as exc:
        messages.error(request, f"The service desk did not answer: {exc}")
    return redirect("servicedesk:health")

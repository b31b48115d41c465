"""The ``/metrics`` endpoint, and who may read it.

Metrics name experiments and campaigns in their labels, so they are for
operators and monitoring systems only: a caller presenting the bearer token
``OPOS_METRICS_TOKEN``, a caller from ``OPOS_METRICS_ALLOWED_NETWORKS`` (the
Prometheus host; the address is the connection's, ``REMOTE_ADDR``, never a
forwarded header anyone can set), or a signed-in operator. Everyone else gets
401 or 403 and no metrics at all.
"""

from __future__ import annotations

import ipaddress
import secrets

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from experiments.models.visibility import is_operator

from . import conf
from .services.metrics import CONTENT_TYPE, render_metrics


def _bearer(request: HttpRequest) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _sep, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def allowed(request: HttpRequest) -> bool:
    """May this caller read the metrics?"""
    token = conf.metrics_token()
    offered = _bearer(request)
    if token and offered is not None:
        return secrets.compare_digest(offered.encode(), token.encode())
    networks = conf.metrics_networks()
    if networks:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            address = None
        if address is not None and any(address in net for net in networks):
            return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and is_operator(user))


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, for allowed callers only."""
    if not allowed(request):
        if conf.metrics_token():
            response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE)

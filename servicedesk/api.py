"""``POST /api/v1/servicedesk/webhook/``: the desk tells us a ticket changed; we pull it.

Only the ticket's identity is taken from the call; everything else is read
back from the desk, so even a validly signed call cannot put words in a
request. Unsigned or badly signed calls get 401 and change nothing (not
even an error row: anyone can send them).
"""

from __future__ import annotations

import logging
import re

from django.db import transaction
from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.parsers import load_json

from . import services, tasks
from .conf import load_config
from .connector import ServiceDeskError, TransientServiceDeskError

log = logging.getLogger("servicedesk")

TICKET = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
SYS_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_BODY = 64 * 1024


class WebhookView(APIView):
    """A signed notice from the service desk that a ticket was created or changed."""

    authentication_classes: list = []
    permission_classes: list = []
    parser_classes: list = []  # the raw body is verified first, then parsed here

    @extend_schema(
        summary="Service-desk webhook (HMAC-SHA256 signed): pull one ticket now",
        request={"application/json": OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter(
                services.SIGNATURE_HEADER,
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=True,
                description="sha256=<hex HMAC-SHA256 of the raw body with the shared secret>",
            )
        ],
        responses={200: OpenApiTypes.OBJECT, 202: OpenApiTypes.OBJECT, 401: OpenApiTypes.OBJECT},
        auth=[],
    )
    def post(self, request):
        config = load_config()
        body = request.body
        if len(body) > MAX_BODY or not services.signature_valid(
            body, request.headers.get(services.SIGNATURE_HEADER), config.webhook_secret
        ):
            log.warning(
                "service desk webhook: missing or bad signature from %s",
                request.META.get("REMOTE_ADDR"),
            )
            return Response(
                {"detail": "Missing or bad signature."}, status=status.HTTP_401_UNAUTHORIZED
            )
        if not config.enabled:
            return Response(
                {"detail": "The service-desk connector is disabled (no SERVICENOW_INSTANCE_URL)."},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        try:
            payload = load_json(body)
        except ValueError:
            return Response({"detail": "The body is not JSON."}, status=status.HTTP_400_BAD_REQUEST)
        number = (
            str(payload.get("number") or payload.get("ticket") or "")
            if isinstance(payload, dict)
            else ""
        )
        sys_id = str(payload.get("sys_id") or "") if isinstance(payload, dict) else ""
        if not (TICKET.fullmatch(number) or SYS_ID.fullmatch(sys_id)):
            return Response(
                {"detail": "Give the ticket's number or sys_id.", "reasons": ["number: required"]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        if not TICKET.fullmatch(number):
            number = ""
        if not SYS_ID.fullmatch(sys_id):
            sys_id = ""
        services.record_webhook_call(timezone.now())
        try:
            outcome = services.pull_ticket(number=number, sys_id=sys_id)
        except TransientServiceDeskError:
            # The desk called us but does not answer us right now: try again from a worker.
            transaction.on_commit(lambda: tasks.pull_ticket.delay(number=number, sys_id=sys_id))
            return Response(
                {"ticket": number or sys_id, "queued": True}, status=status.HTTP_202_ACCEPTED
            )
        except (ServiceDeskError, services.TicketImportError) as exc:
            return Response({"ticket": number or sys_id, "imported": False, "detail": str(exc)})
        if outcome is None:
            return Response(
                {
                    "ticket": number or sys_id,
                    "imported": False,
                    "detail": "Not an active ticket of the production group.",
                }
            )
        return Response(
            {
                "ticket": outcome.ticket,
                "imported": True,
                "request": outcome.request_number,
                "created": outcome.created,
                "adopted": outcome.adopted,
            }
        )


urlpatterns = [path("webhook/", WebhookView.as_view(), name="servicedesk-webhook")]

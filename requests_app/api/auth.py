"""``POST /api/v1/auth/token/``: username and password in, ``{"token": ..., "expiry": ...}``
out. The token is shown this once: the database keeps its digest only (services.tokens)."""

import functools

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from common.clientaddress import client_address

from ..auth import LOCKED_OUT_MESSAGE, locked_out
from ..services import tokens


class ClientAddressThrottle(ScopedRateThrottle):
    """DRF's scoped rate limit, per client address as ``common.clientaddress`` reads it
    (DRF's own reading believes any X-Forwarded-For unless ``NUM_PROXIES`` is set)."""

    def get_ident(self, request) -> str:
        return client_address(request)


def refuse_locked_out(post):
    """Answer 429 when django-axes refused the credentials as locked out.

    axes marks the request it was given, here DRF's wrapper, which Django's middleware
    never sees; so the view itself turns the mark into the answer.
    """

    @functools.wraps(post)
    def wrapper(self, request, *args, **kwargs):
        response = post(self, request, *args, **kwargs)
        if locked_out(request):
            return Response(
                {"detail": LOCKED_OUT_MESSAGE}, status=status.HTTP_429_TOO_MANY_REQUESTS
            )
        return response

    return wrapper


class ObtainTokenView(APIView):
    """Exchange credentials for an API token (throttled against guessing)."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes = [ClientAddressThrottle]
    throttle_scope = "login"

    @extend_schema(
        request=AuthTokenSerializer,
        responses={
            200: inline_serializer(
                "TokenResponse",
                {"token": serializers.CharField(), "expiry": serializers.DateTimeField()},
            ),
            # ``non_field_errors`` for wrong credentials, the field's name for a missing one.
            400: OpenApiTypes.OBJECT,
            429: inline_serializer("Throttled", {"detail": serializers.CharField()}),
        },
        auth=[],
    )
    @refuse_locked_out
    def post(self, request):
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        if not serializer.is_valid():
            return Response(serializer.errors, status=status.HTTP_400_BAD_REQUEST)
        instance, token = tokens.issue(serializer.validated_data["user"])
        return Response({"token": token, "expiry": instance.expiry})

"""``POST /api/v1/auth/token/``: username and password in, ``{"token": ..., "expiry": ...}``
out. The token is shown this once: the database keeps its digest only (services.tokens)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from ..services import tokens


class ObtainTokenView(APIView):
    """Exchange credentials for an API token (throttled against guessing)."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes = [ScopedRateThrottle]
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
    def post(self, request):
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        if not serializer.is_valid():
            return Response(serializer.errors, status=status.HTTP_400_BAD_REQUEST)
        instance, token = tokens.issue(serializer.validated_data["user"])
        return Response({"token": token, "expiry": instance.expiry})

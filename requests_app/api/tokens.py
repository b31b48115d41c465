"""``/api/v1/auth/tokens/``: a user lists their own API tokens and revokes them.

Tokens are named by their key, the first 15 characters of the token (what the database
keeps besides the digest); the token itself is never shown again. Another user's key
answers 404 like an unknown one.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from ..services import tokens


class TokenSerializer(serializers.Serializer):
    key = serializers.CharField(source="token_key", read_only=True)
    created = serializers.DateTimeField(read_only=True)
    expiry = serializers.DateTimeField(read_only=True)
    current = serializers.SerializerMethodField()

    def get_current(self, token) -> bool:
        """Whether this request was made with this token."""
        auth = getattr(self.context.get("request"), "auth", None)
        return getattr(auth, "digest", None) == token.digest


class TokenListView(ListAPIView):
    """The signed-in user's valid API tokens, newest first."""

    serializer_class = TokenSerializer
    pagination_class = None
    filter_backends: list = []

    def get_queryset(self):
        return tokens.tokens_of(self.request.user)


class TokenRevokeView(APIView):
    """Revoke one of the signed-in user's tokens (the one in use too: sign out)."""

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, key: str):
        if not tokens.revoke(request.user, key):
            return Response({"detail": "No such token of yours."}, status=status.HTTP_404_NOT_FOUND)
        return Response(status=status.HTTP_204_NO_CONTENT)

"""API authentication: hashed, expiring tokens (django-rest-knox)."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication

from experiments import viewers


class ExpiringTokenAuthentication(TokenAuthentication):
    """knox's token authentication, refusing expired tokens in one query.

    knox also walks all of the user's other tokens on every request to delete expired
    ones (a second query per API call); here an expired token is simply refused and
    deleted, and the others go when the user is next issued a token
    (``requests_app.services.tokens.issue``).
    """

    def authenticate(self, request):
        # The token is checked in the database on every call (a revoked one fails at
        # once); the user's roles come from the viewer cache (experiments/viewers.py).
        found = super().authenticate(request)
        if found is not None:
            viewers.attach_roles(found[0], request)
        return found

    def _cleanup_token(self, auth_token) -> bool:
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False


class ExpiringTokenScheme(OpenApiAuthenticationExtension):
    """The API schema's name for it: ``tokenAuth``, ``Authorization: Token <token>``."""

    target_class = "opos.authentication.ExpiringTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix=self.target.authenticate_header(None)
        )

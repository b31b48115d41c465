"""Refusals any service raises, with no domain; the API answers them (``common.api_errors``)."""


class PermissionDenied(Exception):
    """The user may not do this to this request (HTTP 403)."""

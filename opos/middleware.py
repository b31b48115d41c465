"""Requests refused before any view sees them."""

from __future__ import annotations

from urllib.parse import unquote_plus

from django.http import HttpResponseBadRequest, JsonResponse


def refuse_nul_characters(get_response):
    """400 for a URL with a NUL character in its path or query.

    Never legitimate, and PostgreSQL cannot even compare a text with one: without this,
    every view that looks up a value from the URL would answer 500 to ``%00``.
    """

    def middleware(request):
        if "\x00" in request.path or "\x00" in unquote_plus(request.META.get("QUERY_STRING", "")):
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": "NUL characters are not allowed."}, status=400)
            return HttpResponseBadRequest("NUL characters are not allowed.")
        return get_response(request)

    return middleware

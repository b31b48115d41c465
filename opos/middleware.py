"""Requests refused before any view sees them."""

from __future__ import annotations

from urllib.parse import unquote_plus

from django.http import HttpResponseBadRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _form_has_nul(request) -> bool:
    """Does a posted form carry a NUL character in a field's name or value?

    Uploaded files are not read here (their content is the view's to judge), nor are
    the API's bodies: parsing them here would take them from DRF's parsers, which
    answer 415 to a form sent where JSON is expected.
    """
    if (
        request.method != "POST"
        or request.path.startswith("/api/")
        or not request.content_type.startswith(FORM_TYPES)
    ):
        return False
    try:
        fields = request.POST.lists()
    except MultiPartParserError:
        return False  # a broken body: the view refuses it as it would have
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in fields)


def refuse_nul_characters(get_response):
    """400 for a NUL character in the URL's path or query, or in a posted form's fields.

    Never legitimate, and PostgreSQL cannot even compare a text with one: without this,
    every view that looks up a value from the URL or a form would answer 500 to ``%00``.
    JSON bodies are checked by the API's parser (``common.parsers``).
    """

    def middleware(request):
        if (
            "\x00" in request.path
            or "\x00" in unquote_plus(request.META.get("QUERY_STRING", ""))
            or _form_has_nul(request)
        ):
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": "NUL characters are not allowed."}, status=400)
            return HttpResponseBadRequest("NUL characters are not allowed.")
        return get_response(request)

    return middleware

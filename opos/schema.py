"""What every API operation can answer besides its own documented responses.

Added to the OpenAPI schema after generation (a drf-spectacular post-processing hook),
so every endpoint, present and future, documents them: 401 without a valid token,
403 when the role may not, 404 for what does not exist or the caller may not see
(and for a page past the end), 400 for input that does not validate. API paths that
match no route answer JSON too (``api_not_found``), never an HTML page.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.views.defaults import page_not_found

PROBLEM_SCHEMA = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "reasons": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["detail"],
}
FIELD_ERRORS_SCHEMA = {
    "type": "object",
    "description": "Messages keyed by field name (or `detail` and `reasons`).",
    "additionalProperties": True,
}
STANDARD = {
    "400": ("Input that does not validate.", FIELD_ERRORS_SCHEMA),
    "401": ("No valid token or session.", PROBLEM_SCHEMA),
    "403": ("The caller's role may not do this.", PROBLEM_SCHEMA),
    "404": ("Not found, or not visible to the caller.", PROBLEM_SCHEMA),
}


def document_refusals(result, generator, request, public):
    """Post-processing hook: add the standard refusals each operation lacks."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            public_operation = operation.get("security") == [{}] or not operation.get(
                "security", True
            )
            for code, (description, schema) in STANDARD.items():
                if code in responses or (code == "401" and public_operation):
                    continue
                responses[code] = {
                    "description": description,
                    "content": {"application/json": {"schema": schema}},
                }
    return result


def api_not_found(request, exception=None):
    """The 404 handler: JSON under ``/api/``, the site's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)

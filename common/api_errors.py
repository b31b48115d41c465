"""Service refusals as HTTP answers, the same for every endpoint.

``ValidationError`` -> 400 keyed by field (per sample line for ``samples``),
``PermissionDenied`` -> 403, ``FieldConflict`` -> 409 keyed by field, ``Refused`` ->
403, 409 or 400 by its kind, with ``{"detail": ..., "reasons": [...]}``
(the classes are in ``common.errors``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import exceptions, serializers, status

from .errors import FieldConflict, PermissionDenied, Refused

# The status of a ``Refused`` by its kind (also of execution's own refusals).
TRANSITION_STATUS = {
    "forbidden": status.HTTP_403_FORBIDDEN,
    "conflict": status.HTTP_409_CONFLICT,
    "invalid": status.HTTP_400_BAD_REQUEST,
}

# The body of 403, 409 and transition 400 answers, for the schema.
ProblemSerializer = inline_serializer(
    "Problem",
    {
        "detail": serializers.CharField(),
        "reasons": serializers.ListField(child=serializers.CharField(), required=False),
    },
)
# 400 answers: messages keyed by field (``samples``: one object per line).
FIELD_ERRORS = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description=(
        "Messages keyed by field name; `samples` holds one object per sample line,"
        ' e.g. `{"samples": [{}, {"events": ["must be greater than zero"]}]}`.'
    ),
)


class Problem(exceptions.APIException):
    """An answer with ``{"detail": ..., "reasons": [...]}`` and a chosen status."""

    def __init__(self, detail: str, reasons: list[str], status_code: int, **extra):
        self.status_code = status_code
        super().__init__({"detail": detail, "reasons": list(reasons), **extra})


def error_detail(exc: ValidationError) -> dict | list:
    """A service ``ValidationError`` as JSON, keeping the per-sample-line structure."""
    if not hasattr(exc, "error_dict"):
        return {"non_field_errors": exc.messages}
    # A model's ``full_clean`` files errors of no one field under "__all__": the API's
    # name for them is "non_field_errors", whichever way they were raised.
    return {
        ("non_field_errors" if field == NON_FIELD_ERRORS else field): _messages(errors)
        for field, errors in exc.error_dict.items()
    }


def _messages(errors: list[ValidationError]) -> list:
    out: list = []
    for error in errors:
        if hasattr(error, "error_dict"):  # one sample line: {field: [...]} (empty when fine)
            out.append(error_detail(error))
        else:
            out.extend(error.messages)
    return out


@contextmanager
def service_errors() -> Iterator[None]:
    """Translate the services' refusals into DRF exceptions (the handler renders them)."""
    try:
        yield
    except FieldConflict as exc:
        fields = error_detail(exc)
        reasons = [f"{field}: {msg}" for field, msgs in fields.items() for msg in msgs]
        raise Problem(
            exc.detail,
            reasons,
            status.HTTP_409_CONFLICT,
            fields=fields,
        ) from exc
    except ValidationError as exc:
        raise exceptions.ValidationError(error_detail(exc)) from exc
    except PermissionDenied as exc:
        raise exceptions.PermissionDenied(str(exc)) from exc
    except Refused as exc:
        raise Problem(exc.detail, exc.reasons, TRANSITION_STATUS.get(exc.kind, 409)) from exc

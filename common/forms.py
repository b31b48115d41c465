"""Form plumbing shared by every app's pages: a service's errors onto the fields they name,
redisplaying what the browser sent, the date input."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

DATE_INPUT = {"type": "date"}


def attach_errors(form: forms.Form, exc: ValidationError) -> None:
    """Put a service's errors on the fields they name; the rest above the form.

    A field that already shows an error keeps only that one, so the same
    problem is not reported twice in different words.
    """
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for field, messages in exc.message_dict.items():
        if field in form.fields:
            if field not in form.errors:
                form.add_error(field, messages)
        else:
            form.add_error(None, [f"{field}: {m}" for m in messages])


def form_values(form: forms.Form) -> dict[str, Any]:
    """What the browser sent, field by field, without validating (to redisplay it)."""
    return {name: form[name].value() for name in form.fields}

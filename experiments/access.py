"""Who may open an operators' page; the data itself is scoped by ``visible_to``."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from .models.visibility import is_operator


def operator_required(view):
    """Signed in (else to the login page) and an operator (else 403)."""

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not is_operator(request.user):
            raise PermissionDenied("Only OPOS operators use this page.")
        return view(request, *args, **kwargs)

    return wrapper

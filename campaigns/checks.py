"""Configuration checks run by ``manage.py check`` (and so by ``migrate`` and ``runserver``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from .batch import BACKENDS


@checks.register(checks.Tags.compatibility)
def default_backend_is_known(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``OPOS_DEFAULT_BACKEND`` names a registered batch backend."""
    name = settings.OPOS_DEFAULT_BACKEND
    if name in BACKENDS:
        return []
    return [
        checks.Error(
            f"OPOS_DEFAULT_BACKEND is {name!r}, which is not a batch backend",
            hint=f"Set it to one of: {', '.join(sorted(BACKENDS))}.",
            id="campaigns.E001",
        )
    ]

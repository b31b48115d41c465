"""Configuration checks run by ``manage.py check`` (and so by ``migrate`` and ``runserver``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from experiments import endpoints

from .batch import REGISTRY


@checks.register(checks.Tags.compatibility)
def default_backend_is_known(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``OPOS_DEFAULT_BACKEND`` names a configured batch endpoint."""
    name = settings.OPOS_DEFAULT_BACKEND
    if name in endpoints.endpoints():
        return []
    return [
        checks.Error(
            f"OPOS_DEFAULT_BACKEND is {name!r}, which is not a configured batch endpoint",
            hint=f"Set it to one of: {', '.join(endpoints.endpoint_names())}.",
            id="campaigns.E001",
        )
    ]


@checks.register(checks.Tags.compatibility)
def endpoints_are_valid(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every entry of ``OPOS_BACKEND_OPTIONS`` is an endpoint of a known kind, and no two
    endpoints of a kind share the folder of their records (Slurm job ids repeat from one
    cluster to another, so shared records would mix two clusters' jobs)."""
    errors: list[checks.CheckMessage] = []
    configured = getattr(settings, "OPOS_BACKEND_OPTIONS", None) or {}
    for name, options in configured.items():
        problem = endpoints.entry_problem(name, options)
        if problem:
            errors.append(
                checks.Error(
                    f"OPOS_BACKEND_OPTIONS: {problem}",
                    hint='Name it after a kind, or give it a "kind" option '
                    f"({', '.join(REGISTRY)}).",
                    id="campaigns.E002",
                )
            )
    owners: dict[tuple[str, str], str] = {}
    for endpoint in endpoints.endpoints().values():
        option = REGISTRY[endpoint.kind].records_option
        folder = endpoint.options.get(option) if option else None
        if not folder:
            continue
        other = owners.setdefault((endpoint.kind, str(folder)), endpoint.name)
        if other != endpoint.name:
            errors.append(
                checks.Error(
                    f"OPOS_BACKEND_OPTIONS: endpoints {other!r} and {endpoint.name!r} share "
                    f"their {option} ({folder})",
                    hint=f"Give each endpoint its own {option}, or leave it out (each then "
                    "gets a folder named after it).",
                    id="campaigns.E003",
                )
            )
    return errors

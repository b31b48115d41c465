"""Validation without writing, for pages that show every error at once.

A form shows the request fields' errors next to the sample lines' errors in
one pass, before anything is saved; the rules stay those of the services.
"""

from __future__ import annotations

from typing import Any

from experiments.models import Experiment

from .requests import _validate_request_fields


def check_request_fields(
    experiment: Experiment, data: dict[str, Any], partial: bool = True, draft: bool = False
) -> dict[str, Any]:
    """Clean the request fields given in ``data`` (ticket, group, title, ...) for ``experiment``.

    Raises ``ValidationError`` keyed by field name, as ``create_request`` and
    ``update_request`` would; with ``partial`` only the fields present are checked.
    """
    return _validate_request_fields(experiment, data, partial=partial, draft=draft)

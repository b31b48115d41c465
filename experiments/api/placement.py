"""The placement fields (where work runs on the batch system) as the API takes them, for
an experiment's defaults and a campaign's own: one place for their types and lengths,
which are the experiment model's; the help text says what empty means where each is
used."""

from __future__ import annotations

from rest_framework import serializers

from ..models import Experiment


def placement_field(name: str, helps: dict[str, str]) -> serializers.CharField:
    """An optional text field named after ``Experiment.<name>``, as long as the model's,
    with its help from ``helps``."""
    return serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=Experiment._meta.get_field(name).max_length,
        help_text=helps[name],
    )

"""Serializer fields of the foundation's names, for every app's API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from .. import endpoints


class EndpointField(serializers.CharField):
    """A batch endpoint's name, checked against the settings when the request comes in
    (the endpoints are configured, not a fixed list): a 400 names the configured ones."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", endpoints.NAME_MAX_LENGTH)
        kwargs.setdefault(
            "help_text",
            "A configured batch endpoint: a kind (local, slurm, htcondor) or a named one "
            "(e.g. slurm-b).",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if value == "" and self.allow_blank:
            return value
        problem = endpoints.endpoint_problem(value)
        if problem:
            raise serializers.ValidationError(problem, code="invalid_choice")
        return value

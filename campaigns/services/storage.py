"""Setting an experiment's output storage area (operators), checked and audited."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from experiments.models import Experiment
from experiments.services import audit

from ..execution.storage import StorageURLError, default_root, validate_url
from ..models import StorageArea
from .errors import CampaignError, require_operator

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def area_url(experiment: Experiment) -> str:
    """Where the experiment's outputs go now (its area, else the embedded default)."""
    area = StorageArea.objects.filter(experiment=experiment).values_list("url", flat=True).first()
    return area or default_root(experiment.slug)


def set_storage_area(
    experiment: Experiment,
    url: str,
    actor: AbstractBaseUser | None = None,
    *,
    console: bool = False,
) -> StorageArea | None:
    """Point ``experiment``'s outputs at ``url`` (root://host:port//path or a local folder);
    an empty ``url`` goes back to the embedded default. Operators only, or the site's
    console (``console=True``: a management command run by whoever runs the service).

    Files already stored keep their replicas (their addresses are absolute); new outputs go
    to the new area.
    """
    if not console:
        require_operator(actor, "set an experiment's output storage")
    clean = ""
    if url and url.strip():
        try:
            clean = validate_url(url)
        except StorageURLError as exc:
            raise CampaignError("The storage area cannot be set.", [f"url: {exc}"]) from exc
    with transaction.atomic():
        current = StorageArea.objects.select_for_update().filter(experiment=experiment).first()
        before = current.url if current else ""
        if clean == before:
            return current
        if not clean:
            if current.replicas.exists():
                raise CampaignError(
                    "The storage area cannot be removed.",
                    ["url: files are stored there; give another area instead"],
                )
            current.delete()
            area = None
        elif current:
            current.url = clean
            current.save(update_fields=["url", "updated"])
            area = current
        else:
            area = StorageArea.objects.create(experiment=experiment, url=clean)
        audit.record(
            "storage.area_set",
            f"experiment {experiment.slug}",
            actor,
            experiment,
            url=[before or default_root(experiment.slug), clean or default_root(experiment.slug)],
        )
    return area

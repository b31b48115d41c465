"""Where an experiment's work runs at the batch system (partition, account, QOS, HTCondor
requirements, partitions to avoid): the API's and the CLI's way to change it.

The admin form checks the same fields (the model's validators and ``Experiment.clean``),
writes the same audit event and sends the same signal: execution then records the change
on every open campaign of the experiment and moves their jobs that have not started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction

from common.errors import PermissionDenied

from .. import events
from ..models import Experiment
from ..models.experiments import split_names
from ..models.visibility import is_operator
from .audit import record

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

PLACEMENT_FIELDS = events.PLACEMENT_FIELDS


def placement_values(experiment: Experiment) -> dict[str, str]:
    """The experiment's placement fields as stored (empty: the site's default)."""
    return {name: getattr(experiment, name) for name in PLACEMENT_FIELDS}


def set_experiment_placement(
    user: AbstractBaseUser, experiment: Experiment, values: dict[str, Any]
) -> dict[str, list[str]]:
    """Change some of the experiment's placement fields; return ``{field: [old, new]}`` of
    those that changed (empty when nothing did: no audit, no move).

    Operators only. Unknown fields, values that are not text, names a batch system would
    refuse and a partition that is also one to avoid are refused, naming the field; nothing
    is written then.
    """
    if not is_operator(user):
        raise PermissionDenied("Only operators change where an experiment's work runs.")
    unknown = sorted(set(values) - set(PLACEMENT_FIELDS))
    if unknown:
        raise ValidationError(
            {
                name: [f"not a placement field (use {', '.join(PLACEMENT_FIELDS)})"]
                for name in unknown
            }
        )
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            value = ""
        if not isinstance(value, str):
            errors[name] = ["a text value (empty for the site's default)"]
            continue
        value = value.strip()
        if name == "batch_avoid_partitions":
            # Stored as the admin stores it: names separated by ", ".
            value = ", ".join(split_names(value))
        cleaned[name] = value
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
        before = placement_values(locked)
        for name, value in cleaned.items():
            setattr(locked, name, value)
        # The fields' own validators and the model's check (own partition not avoided).
        locked.full_clean(
            exclude=[f.name for f in Experiment._meta.fields if f.name not in PLACEMENT_FIELDS]
        )
        changes = {
            name: [before[name], cleaned[name]]
            for name in PLACEMENT_FIELDS
            if name in cleaned and cleaned[name] != before[name]
        }
        if not changes:
            return {}
        locked.save(update_fields=[*changes])
        record(
            "change_experiment_placement",
            f"experiment {locked}",
            actor=user,
            experiment=locked,
            changed={name: new for name, (_old, new) in changes.items()},
            previous={name: old for name, (old, _new) in changes.items()},
        )
        # Execution records it on the open campaigns and moves their queued jobs, in this
        # transaction (as from the admin form).
        events.experiment_placement_changed.send(
            sender=Experiment, experiment=locked, actor=user, changes=changes
        )
    for name, value in cleaned.items():
        setattr(experiment, name, value)
    return changes

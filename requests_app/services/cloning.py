"""Cloning a request into a new draft (ReqMgr2's clone): any state, any experiment the user
may file for.

The clone is filed through ``create_request``, so it passes exactly the checks a new
request does (ticket, working group, deadline bounds, templates, parameters, namespaces,
job limits) and a refusal names each field at fault. Into another experiment the working
group is taken by its slug, each sample's template by its name (that experiment's own or a
shared one, latest version) and the output datasets move to that experiment's namespace;
``changes`` replace any request field. Both requests' histories record the clone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction

from common.errors import PermissionDenied
from experiments.models import Experiment
from experiments.namespaces import namespace_of

from ..models import ProductionRequest, Transition
from .requests import REQUEST_FIELDS, can_file, create_request

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

CLONE_FIELDS = (*REQUEST_FIELDS, "experiment")


def _moved(name: str, source: Experiment, target: Experiment) -> str:
    """A dataset name in the source's namespace, in the target's instead."""
    prefix = namespace_of(source.slug)
    if source.pk != target.pk and name.startswith(prefix):
        return namespace_of(target.slug) + name[len(prefix) :]
    return name


@transaction.atomic
def clone_request(
    user: AbstractBaseUser, source: ProductionRequest, changes: dict[str, Any] | None = None
) -> ProductionRequest:
    """A new draft with the fields and samples of ``source`` (``changes`` on top)."""
    changes = dict(changes or {})
    unknown = sorted(set(changes) - set(CLONE_FIELDS))
    if unknown:
        raise ValidationError(
            {name: [f"not a field of a clone ({', '.join(CLONE_FIELDS)})"] for name in unknown}
        )
    target = source.experiment
    if "experiment" in changes:
        wanted = changes.pop("experiment")
        target = (
            wanted
            if isinstance(wanted, Experiment)
            else Experiment.objects.filter(slug=str(wanted)).first()
        )
        if target is None:
            raise ValidationError({"experiment": [f"no experiment {wanted!r}"]})
    if not can_file(user, target):
        raise PermissionDenied(f"You are not a liaison of {target.name}.")
    same = target.pk == source.experiment_id
    data = {
        "ticket": source.ticket,
        "physics_group": source.physics_group if same else source.physics_group.slug,
        "title": source.title,
        "description": source.description,
        "deadline": source.deadline,
        "priority": source.priority,
        **changes,
    }
    samples = [
        {
            "name": s.name,
            # The very version in the same experiment; by name (latest) in another.
            "template": s.template if same else s.template.name,
            "events": s.events,
            "events_per_job": s.events_per_job,
            "parameters": s.parameters,
            "input_dataset": _moved(s.input_dataset, source.experiment, target)
            if s.input_dataset
            else "",
            "output_dataset": _moved(s.output_dataset, source.experiment, target),
        }
        for s in source.samples.select_related("template").order_by("id")
    ]
    clone = create_request(user, target, data, samples)
    Transition.objects.create(
        request=clone,
        action="clone",
        from_state=clone.state,
        to_state=clone.state,
        actor=user,
        note=f"Cloned from {source.number}.",
        changes={"cloned_from": [None, source.number]},
    )
    Transition.objects.create(
        request=source,
        action="cloned",
        from_state=source.state,
        to_state=source.state,
        actor=user,
        note=f"Cloned into {clone.number}.",
        changes={"clone": [None, clone.number]},
    )
    return clone

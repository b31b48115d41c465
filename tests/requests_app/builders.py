"""Builders shared by the intake service and API tests: eligible experiments and requests."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from experiments.choices import TrainingTopic
from experiments.models import TrainingRecord, WorkflowTemplate
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest
from tests.factories import (
    PhysicsGroupFactory,
    ProductionCodeFactory,
    ProductionRequestFactory,
    SampleFactory,
    StageTemplateFactory,
    WorkflowTemplateFactory,
)

GROUP = "oscillations"
TEMPLATE = "mc-gen"


def qualify(experiment, liaison, topics=tuple(TrainingTopic.values)) -> WorkflowTemplate:
    """Make ``experiment`` eligible: a working group, registered code owned by its
    liaison in a template, and training on ``topics``. Returns the template."""
    PhysicsGroupFactory(experiment=experiment, slug=GROUP, name="Oscillations")
    code = ProductionCodeFactory(experiment=experiment, name=f"{experiment.slug}-gen")
    code.owners.add(liaison)
    template = WorkflowTemplateFactory(experiment=experiment, name=TEMPLATE)
    StageTemplateFactory(template=template, code=code, position=1, name="gen")
    TrainingRecord.objects.create(
        experiment=experiment, held_on=dt.date(2026, 1, 15), topics=list(topics)
    )
    return template


def make_request(
    experiment,
    requester,
    state: str = RequestState.DRAFT,
    *,
    samples: int = 1,
    template: WorkflowTemplate | None = None,
    **fields,
) -> ProductionRequest:
    """A request put straight into ``state`` (test set-up, not a transition)."""
    template = template or WorkflowTemplate.objects.get(experiment=experiment, name=TEMPLATE)
    group = fields.pop("physics_group", None) or experiment.groups.get(slug=GROUP)
    if state == RequestState.ON_HOLD:
        fields.setdefault("held_from", RequestState.APPROVED)
        fields.setdefault("hold_started", timezone.now())
        fields.setdefault("hold_reason", "account permissions")
    request = ProductionRequestFactory(
        experiment=experiment, physics_group=group, requester=requester, state=state, **fields
    )
    for _ in range(samples):
        SampleFactory(request=request, template=template)
    return request


def sample_line(template="mc-gen", **overrides) -> dict:
    """One sample line as the API and ``create_request`` take it."""
    line = {
        "name": "nu-mu-cc",
        "template": template,
        "events": 100000,
        "events_per_job": 1000,
        "parameters": {"seed": 7},
        "input_dataset": "",
        "output_dataset": "dune:mcc5:nu-mu-cc",
    }
    line.update(overrides)
    return line


def request_fields(**overrides) -> dict:
    """The request fields as the API and ``create_request`` take them."""
    fields = {
        "ticket": "RITM0012345",
        "physics_group": GROUP,
        "title": "MCC5.0 oscillation samples",
        "description": "For the oscillation analysis.",
        "deadline": (timezone.localdate() + dt.timedelta(days=30)).isoformat(),
        "priority": "high",
    }
    fields.update(overrides)
    return fields

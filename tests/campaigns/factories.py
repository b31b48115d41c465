"""Factories and builders for the campaign tests (on top of tests/factories.py)."""

import datetime as dt

import factory
from django.utils import timezone

from campaigns.models import Campaign
from experiments.models import SplitRule
from requests_app.choices import RequestState
from tests.factories import (
    ExperimentFactory,
    ProductionCodeFactory,
    ProductionRequestFactory,
    SampleFactory,
    StageTemplateFactory,
    UserFactory,
    WorkflowTemplateFactory,
    grant,
)


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    experiment = factory.SubFactory(ExperimentFactory)
    name = factory.Sequence(lambda n: f"Round {n}")
    deadline = factory.LazyFunction(lambda: timezone.localdate() + dt.timedelta(days=20))
    backend = "local"


def code_owner(experiment):
    """A liaison of ``experiment``: the account authorised to own its production code."""
    return grant(UserFactory(username=f"owner-{experiment.slug}"), "liaison", experiment)


def approved_code(experiment, **kwargs):
    code = ProductionCodeFactory(experiment=experiment, approved=True, **kwargs)
    code.owners.set([code_owner(experiment)])
    return code


# name, split, files_per_job, walltime_s, reads the previous stage
GEN_SIM_RECO = [
    ("generation", SplitRule.EVENTS, None, 600),
    ("simulation", SplitRule.FILES, 1, 1200),
    ("reconstruction", SplitRule.FILES, 2, 900),
]


def workflow(experiment, stages=GEN_SIM_RECO, name=None, parameters=None):
    """A template whose stages read each other in order, with approved, owned code."""
    template = WorkflowTemplateFactory(experiment=experiment, **({"name": name} if name else {}))
    previous = None
    for position, (stage_name, split, per_file, walltime) in enumerate(stages):
        previous = StageTemplateFactory(
            template=template,
            position=position,
            name=stage_name,
            code=approved_code(experiment),
            split=split,
            files_per_job=per_file,
            walltime_s=walltime,
            input_stage=previous if position else None,
            parameters=parameters
            if parameters is not None
            else (
                {"seed": {"type": "int", "default": 1, "min": 1, "max": 1000}}
                if not position
                else {}
            ),
        )
    return template


def approved_request(
    experiment,
    template=None,
    events=1000,
    per_job=100,
    days=30,
    priority="normal",
    state=RequestState.APPROVED,
    samples=1,
    **sample_kwargs,
):
    """A request in ``state`` (approved by default) with ``samples`` sample lines."""
    template = template or workflow(experiment)
    request = ProductionRequestFactory(
        experiment=experiment,
        state=state,
        priority=priority,
        deadline=timezone.localdate() + dt.timedelta(days=days),
    )
    for _ in range(samples):
        SampleFactory(
            request=request,
            template=template,
            events=events,
            events_per_job=per_job,
            **sample_kwargs,
        )
    return request

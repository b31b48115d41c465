"""factory_boy factories for the domain models."""

import datetime as dt
import hashlib

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from experiments.models import (
    Experiment,
    PhysicsGroup,
    ProductionCode,
    StageTemplate,
    WorkflowTemplate,
)
from experiments.services.roles import grant_role
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest, Sample
from requests_app.services.numbering import next_request_number


def grant(user, role, experiment=None):
    """Give an existing factory user a role; returns the user."""
    grant_role(user.username, role, experiment.slug if experiment else None)
    user.refresh_from_db()
    return user


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password("pw")


class ExperimentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Experiment
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"exp{n}")
    name = factory.LazyAttribute(lambda e: e.slug.upper())
    sla_accepted_on = dt.date(2026, 1, 1)
    sla_reference = "SLA-1"


class PhysicsGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PhysicsGroup
        django_get_or_create = ("experiment", "slug")

    experiment = factory.SubFactory(ExperimentFactory)
    slug = factory.Sequence(lambda n: f"group{n}")
    name = factory.LazyAttribute(lambda g: g.slug.title())


class ProductionCodeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProductionCode

    experiment = factory.SubFactory(ExperimentFactory)
    name = factory.Sequence(lambda n: f"script{n}")
    version = "1.0"
    location = "/opt/code/script.py"
    sha256 = factory.LazyAttribute(lambda c: hashlib.sha256(c.name.encode()).hexdigest())
    approved = True


class WorkflowTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WorkflowTemplate

    experiment = factory.SubFactory(ExperimentFactory)
    name = factory.Sequence(lambda n: f"template{n}")


class StageTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StageTemplate

    template = factory.SubFactory(WorkflowTemplateFactory)
    position = factory.Sequence(lambda n: n)
    name = factory.Sequence(lambda n: f"stage{n}")
    code = factory.SubFactory(
        ProductionCodeFactory, experiment=factory.SelfAttribute("..template.experiment")
    )
    parameters = factory.LazyFunction(
        lambda: {"seed": {"type": "int", "default": 1, "min": 1, "max": 1000}}
    )


class ProductionRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProductionRequest

    number = factory.LazyAttribute(lambda r: next_request_number(r.experiment))
    ticket = factory.Sequence(lambda n: f"RITM{n:07d}")
    experiment = factory.SubFactory(ExperimentFactory)
    physics_group = factory.SubFactory(
        PhysicsGroupFactory, experiment=factory.SelfAttribute("..experiment")
    )
    requester = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Request {n}")
    deadline = factory.LazyFunction(lambda: timezone.localdate() + dt.timedelta(days=30))
    state = RequestState.DRAFT


class SampleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Sample

    request = factory.SubFactory(ProductionRequestFactory)
    name = factory.Sequence(lambda n: f"sample{n}")
    template = factory.SubFactory(
        WorkflowTemplateFactory, experiment=factory.SelfAttribute("..request.experiment")
    )
    events = 1000
    events_per_job = 100
    output_dataset = factory.LazyAttribute(lambda s: f"{s.request.experiment.slug}:{s.name}")

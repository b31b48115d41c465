"""Model invariants enforced by the database itself."""

import pytest
from django.db import IntegrityError, transaction

from experiments.models import Membership
from requests_app.models import Sample
from requests_app.services import next_request_number
from tests.factories import (
    ProductionCodeFactory,
    ProductionRequestFactory,
    SampleFactory,
    UserFactory,
)


def test_request_numbers_are_sequential_per_experiment_and_year(experiment, other_experiment):
    assert next_request_number(experiment, 2031) == "DUNE-2031-0001"
    assert next_request_number(experiment, 2031) == "DUNE-2031-0002"
    assert next_request_number(experiment, 2032) == "DUNE-2032-0001"
    # Another experiment's numbers say nothing about DUNE's volume.
    assert next_request_number(other_experiment, 2031) == "SBND-2031-0001"
    assert next_request_number(experiment, 2031) == "DUNE-2031-0003"


@pytest.mark.parametrize(("events", "per_job"), [(0, 1), (10, 0), (10, 11)])
def test_sample_event_constraints(experiment, events, per_job):
    sample = SampleFactory(request=ProductionRequestFactory(experiment=experiment))
    with pytest.raises(IntegrityError), transaction.atomic():
        Sample.objects.filter(pk=sample.pk).update(events=events, events_per_job=per_job)


def test_one_role_per_experiment(experiment):
    user = UserFactory()
    Membership.objects.create(user=user, experiment=experiment, role="liaison")
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(user=user, experiment=experiment, role="physicist")


def test_invalid_state_rejected_by_database(experiment):
    request = ProductionRequestFactory(experiment=experiment)
    with pytest.raises(IntegrityError), transaction.atomic():
        type(request).objects.filter(pk=request.pk).update(state="flying")


def test_code_version_registered_once(experiment):
    ProductionCodeFactory(experiment=experiment, name="gen", version="1")
    with pytest.raises(IntegrityError), transaction.atomic():
        ProductionCodeFactory(experiment=experiment, name="gen", version="1")


def test_sample_names_unique_per_request(experiment):
    sample = SampleFactory(request=ProductionRequestFactory(experiment=experiment))
    with pytest.raises(IntegrityError), transaction.atomic():
        SampleFactory(request=sample.request, name=sample.name, template=sample.template)

"""``OPOS_DEFAULT_BACKEND`` decides where a new experiment's jobs run.

A compose deployment sets it to ``slurm``: before, nothing read it, experiments started
on ``local`` and their jobs ran inside the worker's container.
"""

import io

import pytest
from django.core.management import call_command
from django.test import override_settings

from campaigns.checks import default_backend_is_known
from experiments.models import Experiment


@pytest.mark.django_db
@override_settings(OPOS_DEFAULT_BACKEND="slurm")
def test_a_new_experiment_starts_on_the_configured_backend():
    experiment = Experiment.objects.create(slug="mu2e", name="Mu2e")
    assert experiment.default_backend == "slurm"


@pytest.mark.django_db
@override_settings(OPOS_DEFAULT_BACKEND="htcondor")
def test_the_demo_experiments_follow_the_configured_backend():
    call_command("seed_demo", stdout=io.StringIO())
    assert set(Experiment.objects.values_list("default_backend", flat=True)) == {"htcondor"}


def test_an_unknown_default_backend_is_a_configuration_error():
    with override_settings(OPOS_DEFAULT_BACKEND="pbs"):
        (error,) = default_backend_is_known()
    assert error.id == "campaigns.E001"
    assert "'pbs'" in error.msg and "slurm" in error.hint
    with override_settings(OPOS_DEFAULT_BACKEND="local"):
        assert default_backend_is_known() == []

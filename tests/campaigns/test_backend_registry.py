"""Backends are registered once (``campaigns.batch.REGISTRY``); every list is derived.

A new backend added to the registry but not to the choices the tables store (or the
other way round) fails here, not at the first job of a deployment.
"""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import override_settings

from campaigns import conf
from campaigns.batch import BACKENDS, REGISTRY, BatchBackend, get_backend
from experiments.choices import BackendName


def test_the_registry_names_exactly_the_stored_choices():
    assert set(REGISTRY) == set(BackendName.values)
    assert set(BACKENDS) == set(REGISTRY)
    # Every backend the settings configure is a registered one.
    assert set(settings.OPOS_BACKEND_OPTIONS) == set(REGISTRY)


def test_every_registered_path_names_a_batch_backend():
    for name, entry in REGISTRY.items():
        module_name, _, class_name = entry.path.partition(":")
        module = __import__(module_name, fromlist=[class_name])
        cls = getattr(module, class_name)
        assert issubclass(cls, BatchBackend), name
        assert cls.name == name


def test_capacity_defaults_come_from_the_registry_and_settings_override_them():
    with override_settings(OPOS_BACKEND_CAPACITY={}):
        assert conf.backend_capacity() == {n: e.capacity for n, e in REGISTRY.items()}
    with override_settings(OPOS_BACKEND_CAPACITY={"slurm": "7"}):
        capacity = conf.backend_capacity()
    assert capacity["slurm"] == 7
    assert capacity["local"] == REGISTRY["local"].capacity


def test_the_settings_read_only_the_capacities_the_environment_gives():
    # A fresh interpreter: the settings module reads the environment once, at import.
    env = {**os.environ, "OPOS_SLURM_CAPACITY": "123", "OPOS_LOCAL_CAPACITY": ""}
    env.pop("OPOS_HTCONDOR_CAPACITY", None)
    out = subprocess.run(
        [sys.executable, "-c", "from opos import settings; print(settings.OPOS_BACKEND_CAPACITY)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "{'slurm': 123}"


def test_an_unknown_backend_is_refused_with_the_registered_names():
    with pytest.raises(ValueError, match=r"'pbs'.*slurm"):
        get_backend("pbs")

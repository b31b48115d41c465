"""Named batch endpoints (experiments/endpoints.py): what the settings configure, how a name
is checked wherever it comes in, what each endpoint is built with and its capacity.

The real run of two Slurm clusters side by side is tests/campaigns/test_exec_slurm_endpoints.py.
"""

import datetime as dt
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.urls import reverse
from django.utils import timezone

from campaigns import conf
from campaigns.batch.htcondor import HTCondorBackend
from campaigns.batch.slurm import SlurmBackend
from campaigns.checks import default_backend_is_known, endpoints_are_valid
from campaigns.execution import backends
from campaigns.forms import CampaignForm, PartitionForm
from campaigns.services import create_campaign
from campaigns.services.errors import CampaignError
from campaigns.services.partitions import set_partition
from experiments import endpoints
from opos.endpoint_settings import batch_endpoints, env_key
from tests.campaigns.factories import CampaignFactory

SLURM_B = {"kind": "slurm", "slurm_conf": "/var/lib/opos-slurm-b/slurm.conf"}


@pytest.fixture
def two_clusters(settings, tmp_path):
    """The test settings' kinds, plus a second Slurm cluster and a second HTCondor schedd."""
    settings.OPOS_BACKEND_OPTIONS = {
        **settings.OPOS_BACKEND_OPTIONS,
        "slurm": {**settings.OPOS_BACKEND_OPTIONS["slurm"], "partition": "debug"},
        "slurm-b": {**SLURM_B, "state_dir": str(tmp_path / "slurm-b")},
        "condor-east": {"kind": "htcondor", "schedd_name": "schedd.east", "pool": "cm.east"},
    }
    return settings


# --- what the settings configure ---------------------------------------------------------------


def test_kinds_and_named_endpoints_are_the_valid_names(two_clusters):
    assert endpoints.endpoint_names() == ["local", "slurm", "htcondor", "slurm-b", "condor-east"]
    assert endpoints.kind_of("slurm") == "slurm"
    assert endpoints.kind_of("slurm-b") == "slurm"
    assert endpoints.kind_of("condor-east") == "htcondor"
    assert endpoints.get("slurm-b").options["slurm_conf"] == SLURM_B["slurm_conf"]
    assert "kind" not in endpoints.get("slurm-b").options


def test_a_named_endpoint_inherits_its_kind_but_never_where_work_goes(settings):
    settings.OPOS_BACKEND_OPTIONS = {
        "slurm": {
            "job_user": "opos-job",
            "timeout": 30,
            "partition": "debug",
            "account": "physics",
            "state_dir": "/srv/a",
            "slurm_conf": "/etc/slurm/slurm.conf",
        },
        "slurm-b": {"kind": "slurm", "slurm_conf": "/etc/slurm-b/slurm.conf", "timeout": 90},
    }
    options = endpoints.get("slurm-b").options
    # The batch account stays (jobs must never run as the service's account) ...
    assert options["job_user"] == "opos-job"
    # ... its own options win, and the first cluster's place is not taken along.
    assert options == {
        "job_user": "opos-job",
        "timeout": 90,
        "slurm_conf": "/etc/slurm-b/slurm.conf",
    }


@pytest.mark.parametrize(
    "name, options, words",
    [
        ("Slurm B", {"kind": "slurm"}, "not a valid endpoint name"),
        ("../b", {"kind": "slurm"}, "not a valid endpoint name"),
        ("x" * 33, {"kind": "slurm"}, "not a valid endpoint name"),
        ("pbs", {}, 'give it a "kind" option'),
        ("pbs-b", {"kind": "pbs"}, "kind 'pbs' is not one of local, slurm, htcondor"),
        ("slurm", {"kind": "htcondor"}, "its kind must be 'slurm'"),
        ("slurm-b", "slurm", "must be a mapping"),
    ],
)
def test_bad_entries_are_left_out_and_reported_by_the_checks(settings, name, options, words):
    settings.OPOS_BACKEND_OPTIONS = {"local": {}, name: options}
    assert words in endpoints.entry_problem(name, options)
    assert endpoints.endpoint_names() == ["local"]
    (error,) = endpoints_are_valid()
    assert error.id == "campaigns.E002" and words in error.msg


def test_the_checks_refuse_two_endpoints_sharing_their_records(settings):
    settings.OPOS_BACKEND_OPTIONS = {
        "slurm": {"state_dir": "/srv/slurm"},
        "slurm-b": {"kind": "slurm", "state_dir": "/srv/slurm"},
    }
    (error,) = endpoints_are_valid()
    assert error.id == "campaigns.E003"
    assert "'slurm' and 'slurm-b' share their state_dir" in error.msg


def test_the_default_backend_may_be_a_named_endpoint(two_clusters):
    two_clusters.OPOS_DEFAULT_BACKEND = "slurm-b"
    assert default_backend_is_known() == []
    assert endpoints_are_valid() == []
    two_clusters.OPOS_DEFAULT_BACKEND = "slurm-c"
    (error,) = default_backend_is_known()
    assert "'slurm-c'" in error.msg and "slurm-b" in error.hint


def test_capacity_per_endpoint_defaults_to_its_kind(two_clusters):
    two_clusters.OPOS_BACKEND_CAPACITY = {"slurm": 40}
    capacity = conf.backend_capacity()
    assert capacity["slurm"] == 40
    assert capacity["slurm-b"] == 1000  # Slurm's registration, not the first cluster's 40
    assert capacity["condor-east"] == 5000
    two_clusters.OPOS_BACKEND_CAPACITY = {"slurm": 40, "slurm-b": 3}
    assert conf.backend_capacity()["slurm-b"] == 3


# --- what each endpoint is built with ----------------------------------------------------------


def test_each_endpoint_builds_its_kind_with_its_own_options(two_clusters, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    first, second = backends.backend("slurm"), backends.backend("slurm-b")
    assert isinstance(first, SlurmBackend) and isinstance(second, SlurmBackend)
    assert first is not second
    assert second.slurm_conf == SLURM_B["slurm_conf"]
    assert second.state_dir == tmp_path / "slurm-b"
    assert first.state_dir != second.state_dir
    # Every command of the second cluster runs with its slurm.conf in the environment (an
    # argument list, never a shell string).
    assert second._env()["SLURM_CONF"] == SLURM_B["slurm_conf"]
    east = backends.backend("condor-east")
    assert isinstance(east, HTCondorBackend)
    assert (east.schedd_name, east.pool) == ("schedd.east", "cm.east")
    # The site's placement defaults are each endpoint's own.
    assert backends.spec_options("slurm") == {"partition": "debug"}
    assert backends.spec_options("slurm-b") == {}


def test_an_endpoint_without_a_records_folder_gets_one_named_after_it(
    settings, monkeypatch, tmp_path
):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    settings.OPOS_BACKEND_OPTIONS = {"slurm": {}, "slurm-c": {"kind": "slurm"}}
    assert backends.backend("slurm-c").state_dir == tmp_path / "opos" / "batch" / "slurm-c"
    assert backends.backend("slurm").state_dir == tmp_path / "opos" / "batch" / "slurm"


def test_an_endpoint_no_longer_configured_is_a_backend_error(two_clusters):
    from campaigns.batch import BackendError

    with pytest.raises(BackendError, match="'slurm-c' is not a configured batch endpoint"):
        backends.backend("slurm-c")


# --- the environment ---------------------------------------------------------------------------


def test_endpoints_from_the_environment(tmp_path):
    kinds = {"slurm": {"timeout": 60, "state_dir": "/data/batch/slurm"}}
    options, capacity, links = batch_endpoints(
        '{"slurm-b": {"kind": "slurm", "slurm_conf": "/b.conf", "capacity": 300,'
        ' "job_url": "https://b.example.org/{batch_id}"},'
        ' "slurm": {"slurm_conf": "/a.conf"}}',
        kinds,
        tmp_path,
    )
    assert options["slurm-b"] == {
        "kind": "slurm",
        "slurm_conf": "/b.conf",
        "state_dir": str(tmp_path / "slurm-b"),
    }
    # An entry named after a kind adds to the kind's own endpoint.
    assert options["slurm"] == {
        "timeout": 60,
        "state_dir": "/data/batch/slurm",
        "slurm_conf": "/a.conf",
    }
    assert capacity == {"slurm-b": 300}
    assert links == {"slurm-b": "https://b.example.org/{batch_id}"}
    assert env_key("slurm-b") == "SLURM_B"


@pytest.mark.parametrize(
    "raw, words",
    [
        ("{not json", "not valid JSON"),
        ('["slurm-b"]', "a JSON object of objects"),
        ('{"Slurm B": {"kind": "slurm"}}', "not a valid endpoint name"),
        ('{"slurm-b": {"kind": "slurm", "capacity": "lots"}}', "must be a whole number"),
    ],
)
def test_bad_endpoints_in_the_environment_stop_the_start(raw, words, tmp_path):
    with pytest.raises(ImproperlyConfigured, match=words):
        batch_endpoints(raw, {}, tmp_path)


def test_the_settings_read_the_endpoints_and_their_capacity_from_the_environment():
    env = {
        **os.environ,
        "OPOS_BATCH_ENDPOINTS": '{"slurm-b": {"kind": "slurm", "slurm_conf": "/b.conf",'
        ' "capacity": 7}}',
        "OPOS_SLURM_B_CAPACITY": "9",
        "OPOS_SLURM_B_JOB_URL": "https://b.example.org/{batch_id}",
    }
    for name in ("OPOS_SLURM_CAPACITY", "OPOS_LOCAL_CAPACITY", "OPOS_HTCONDOR_CAPACITY"):
        env.pop(name, None)
    code = (
        "from opos import settings as s; o = s.OPOS_BACKEND_OPTIONS['slurm-b'];"
        "print(o['kind'], o['slurm_conf'], o['state_dir'].endswith('/batch/slurm-b'));"
        "print(s.OPOS_BACKEND_CAPACITY); print(s.OPOS_BATCH_JOB_URL['slurm-b'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines() == [
        "slurm /b.conf True",
        "{'slurm-b': 9}",  # the variable over the entry's "capacity"
        "https://b.example.org/{batch_id}",
    ]


# --- every way a name comes in ------------------------------------------------------------------


def test_a_model_field_refuses_an_unconfigured_endpoint_naming_the_configured(two_clusters):
    with pytest.raises(ValidationError) as refused:
        endpoints.validate_endpoint("slurm-c")
    assert refused.value.messages == [
        "'slurm-c' is not a configured batch endpoint; the configured endpoints are: local, "
        "slurm, htcondor, slurm-b, condor-east"
    ]
    endpoints.validate_endpoint("slurm-b")


@pytest.mark.django_db
def test_services_take_named_endpoints_and_refuse_others(two_clusters, operator, experiment):
    deadline = timezone.localdate() + dt.timedelta(days=30)
    campaign = create_campaign(operator, experiment, name="B", deadline=deadline, backend="slurm-b")
    assert campaign.backend == "slurm-b"
    with pytest.raises(CampaignError) as refused:
        create_campaign(operator, experiment, name="C", deadline=deadline, backend="slurm-c")
    assert "backend: 'slurm-c' is not a configured batch endpoint" in str(refused.value)
    assert "slurm-b" in str(refused.value)
    # Partitions of two clusters are apart, even named alike.
    assert set_partition(operator, "debug", 4, backend="slurm").backend == "slurm"
    assert set_partition(operator, "debug", 2, backend="slurm-b").backend == "slurm-b"
    with pytest.raises(CampaignError, match="'slurm-c' is not a configured batch endpoint"):
        set_partition(operator, "debug", 2, backend="slurm-c")


@pytest.mark.django_db
def test_the_api_takes_named_endpoints_and_refuses_others(two_clusters, api, operator, experiment):
    deadline = (timezone.localdate() + dt.timedelta(days=30)).isoformat()
    client = api(operator)
    payload = {"experiment": "dune", "name": "B", "deadline": deadline, "backend": "slurm-b"}
    response = client.post("/api/v1/campaigns/", payload, format="json")
    assert response.status_code == 201 and response.json()["backend"] == "slurm-b"
    response = client.post(
        "/api/v1/campaigns/", {**payload, "name": "C", "backend": "slurm-c"}, format="json"
    )
    assert response.status_code == 400
    (message,) = response.json()["backend"]
    assert "'slurm-c' is not a configured batch endpoint" in message and "slurm-b" in message
    response = client.post(
        "/api/v1/partitions/", {"backend": "slurm-b", "name": "debug", "capacity": 3}, format="json"
    )
    assert response.status_code == 201 and response.json()["backend"] == "slurm-b"
    response = client.post(
        "/api/v1/partitions/", {"backend": "pbs", "name": "debug", "capacity": 3}, format="json"
    )
    assert (
        response.status_code == 400 and "configured endpoints are" in response.json()["backend"][0]
    )


def test_the_forms_offer_the_configured_endpoints(two_clusters):
    names = [value for value, _label in CampaignForm().fields["backend"].choices]
    assert names == ["", "local", "slurm", "htcondor", "slurm-b", "condor-east"]
    labels = dict(PartitionForm().fields["backend"].choices)
    assert labels["slurm"] == "Slurm" and labels["slurm-b"] == "slurm-b (Slurm)"
    form = PartitionForm({"backend": "slurm-c", "name": "debug", "capacity": 1})
    assert not form.is_valid() and "backend" in form.errors


@pytest.mark.django_db
def test_an_experiment_default_endpoint_is_validated_and_shown(two_clusters, experiment):
    experiment.default_backend = "slurm-c"
    with pytest.raises(ValidationError) as refused:
        experiment.full_clean()
    assert "default_backend" in refused.value.message_dict
    experiment.default_backend = "slurm-b"
    experiment.full_clean()
    assert experiment.default_backend_label == "slurm-b (Slurm)"


@pytest.mark.django_db
def test_the_campaign_page_shows_its_endpoint(two_clusters, client, operator, experiment):
    campaign = CampaignFactory(experiment=experiment, name="B", backend="slurm-b")
    client.force_login(operator)
    page = client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    assert "<dt>Backend</dt><dd>slurm-b (Slurm)</dd>" in page


def test_the_label_of_a_kind_own_endpoint_is_the_kind(two_clusters):
    assert endpoints.label("slurm") == "Slurm"
    assert endpoints.label("local") == "Local processes"
    assert endpoints.label("condor-east") == "condor-east (HTCondor)"
    assert endpoints.label("") == ""


@pytest.mark.django_db
def test_the_admin_offers_the_configured_endpoints_as_an_experiment_default(
    two_clusters, client, admin_user, experiment
):
    client.force_login(admin_user)
    page = client.get(f"/admin/experiments/experiment/{experiment.pk}/change/")
    field = page.context["adminform"].form.fields["default_backend"]
    assert [name for name, _label in field.choices][-2:] == ["slurm-b", "condor-east"]
    assert field.clean("slurm-b") == "slurm-b"
    with pytest.raises(ValidationError):
        field.clean("slurm-c")

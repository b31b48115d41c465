"""Dataset names are confined to the filing experiment's namespace (``<slug>:...``).

One catalogue holds every experiment's datasets with unique names; without the rule SBND
could file or define ``dune:...`` and so block DUNE's own scheduling of that name.
"""

import pytest
from django.core.exceptions import ValidationError

from campaigns.execution.catalogue import define_dataset
from campaigns.models import Dataset
from campaigns.services import CampaignError, schedule_requests
from experiments.namespaces import in_namespace
from requests_app.services import create_request
from tests.campaigns.factories import CampaignFactory, approved_request
from tests.requests_app.builders import qualify, request_fields, sample_line

NAMESPACE_ERROR = "must start with sbnd: (the experiment's namespace)"


@pytest.fixture
def sbnd_template(other_experiment, other_liaison):
    return qualify(other_experiment, other_liaison)


@pytest.mark.parametrize(
    ("name", "inside"),
    [
        ("dune:mcc5:numu", True),
        ("dune:x", True),
        ("dune:", False),
        ("dune", False),
        ("dunex:numu", False),
        ("sbnd:numu", False),
        ("mcc5:numu", False),
    ],
)
def test_in_namespace(name, inside):
    assert in_namespace("dune", name) is inside


@pytest.mark.parametrize("name", ["dune:mcc5:numu", "mcc5:numu", "numu", "nope:x"])
def test_filing_outside_ones_namespace_is_refused_alike(
    other_liaison, other_experiment, sbnd_template, experiment, name
):
    # The answer is the same whether "dune" exists or not: it names only SBND's namespace.
    with pytest.raises(ValidationError) as refused:
        create_request(
            other_liaison,
            other_experiment,
            request_fields(),
            [sample_line(template=sbnd_template.name, output_dataset=name)],
        )
    assert NAMESPACE_ERROR in str(refused.value)


def test_filing_in_ones_namespace_is_accepted(other_liaison, other_experiment, sbnd_template):
    request = create_request(
        other_liaison,
        other_experiment,
        request_fields(),
        [sample_line(template=sbnd_template.name, output_dataset="sbnd:mcc5:numu")],
    )
    assert request.samples.get().output_dataset == "sbnd:mcc5:numu"


def test_the_api_names_the_field(api, other_liaison, sbnd_template):
    body = {
        "experiment": "sbnd",
        **request_fields(),
        "samples": [sample_line(template=sbnd_template.name, output_dataset="dune:claimed")],
    }
    response = api(other_liaison).post("/api/v1/requests/", body, format="json")
    assert response.status_code == 400
    assert response.json()["samples"][0]["output_dataset"] == [NAMESPACE_ERROR]


def test_defining_a_dataset_in_another_namespace_is_refused(
    other_liaison, other_experiment, experiment
):
    with pytest.raises(CampaignError) as refused:
        define_dataset(other_liaison, other_experiment, "dune:flux")
    assert f"name: {NAMESPACE_ERROR}" in refused.value.reasons
    assert not Dataset.objects.exists()
    assert define_dataset(other_liaison, other_experiment, "sbnd:flux").name == "sbnd:flux"


def test_operators_are_held_to_the_experiments_namespace_too(operator, other_experiment):
    with pytest.raises(CampaignError):
        define_dataset(operator, other_experiment, "dune:flux")


def test_a_line_filed_before_the_rule_cannot_take_another_experiments_name(
    operator, experiment, other_experiment
):
    # An SBND sample written before names were confined, naming DUNE's namespace.
    request = approved_request(other_experiment, output_dataset="dune:mcc5:claimed")
    campaign = CampaignFactory(experiment=other_experiment, created_by=operator)
    with pytest.raises(CampaignError) as refused:
        schedule_requests(campaign, [request.pk], operator)
    assert any("dune:mcc5:claimed is in dune's namespace" in r for r in refused.value.reasons)
    assert not Dataset.objects.exists()
    # DUNE's own line of that name schedules.
    own = approved_request(experiment, output_dataset="dune:mcc5:claimed")
    dune_campaign = CampaignFactory(experiment=experiment, created_by=operator)
    schedule_requests(dune_campaign, [own.pk], operator)
    assert Dataset.objects.filter(name="dune:mcc5:claimed", experiment=experiment).exists()

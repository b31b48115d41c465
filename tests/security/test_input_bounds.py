"""Every input has bounds: each out-of-bounds value is refused by name before anything is
built, and a row stored before the bounds can be repaired through the product.

Deadlines within ``OPOS_DEADLINE_HORIZON_DAYS``; events, events per job and jobs per
sample and per request within their settings (counted, not built); sizes that fit their
columns; JSON bodies within ``OPOS_JSON_MAX_DEPTH``, 64-bit integers and no NUL.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.choices import CampaignEventKind, CampaignState
from campaigns.models import Campaign, CampaignEvent, Dataset
from campaigns.services import CampaignError, campaign_action, schedule_requests
from campaigns.services.expansion import plan_sample
from campaigns.services.templates import topological_order
from campaigns.tasks import submit_ready
from common import limits
from experiments.models import SplitRule
from requests_app.choices import RequestState
from requests_app.models import ProductionRequest, Sample
from tests.campaigns.factories import GEN_SIM_RECO, CampaignFactory, approved_request, workflow
from tests.requests_app.builders import make_request, qualify, request_fields, sample_line

pytestmark = pytest.mark.django_db

FAR = "9999-12-31"
REQUESTS = "/api/v1/requests/"
CAMPAIGNS = "/api/v1/campaigns/"


def in_days(n: int) -> dt.date:
    return timezone.localdate() + dt.timedelta(days=n)


def too_far(deadline: str) -> str:
    return (
        f"{deadline} is too far ahead: at most {limits.deadline_horizon_days()} days from "
        f"today ({limits.latest_deadline()}, OPOS_DEADLINE_HORIZON_DAYS)"
    )


@pytest.fixture
def template(experiment, liaison):
    return qualify(experiment, liaison)


def new_request(experiment, **fields) -> dict:
    samples = fields.pop("samples", [sample_line()])
    return {"experiment": experiment.slug, **request_fields(**fields), "samples": samples}


# --- deadlines -----------------------------------------------------------------------------------


def test_api_refuses_a_request_deadline_beyond_the_horizon(api, experiment, liaison, template):
    response = api(liaison).post(REQUESTS, new_request(experiment, deadline=FAR), format="json")

    assert response.status_code == 400, response.content
    assert response.json() == {"deadline": [too_far(FAR)]}
    assert not ProductionRequest.objects.exists()


def test_the_horizon_is_a_setting(api, experiment, liaison, template, settings):
    settings.OPOS_DEADLINE_HORIZON_DAYS = 10
    client = api(liaison)

    late = client.post(REQUESTS, new_request(experiment, deadline=str(in_days(11))), format="json")
    last = client.post(REQUESTS, new_request(experiment, deadline=str(in_days(10))), format="json")

    assert late.status_code == 400 and "at most 10 days" in late.json()["deadline"][0]
    assert last.status_code == 201, last.content


def test_an_edit_to_a_far_deadline_is_refused_but_other_edits_of_such_a_row_go_through(
    api, experiment, liaison, template
):
    stored = make_request(experiment, liaison, deadline=dt.date(9999, 12, 31))
    client = api(liaison)

    far = client.patch(f"{REQUESTS}{stored.pk}/", {"deadline": "9000-01-01"}, format="json")
    title = client.patch(f"{REQUESTS}{stored.pk}/", {"title": "Renamed"}, format="json")
    fixed = client.patch(f"{REQUESTS}{stored.pk}/", {"deadline": str(in_days(60))}, format="json")

    assert far.status_code == 400 and far.json() == {"deadline": [too_far("9000-01-01")]}
    assert title.status_code == 200, title.content
    assert fixed.status_code == 200, fixed.content
    stored.refresh_from_db()
    assert (stored.title, stored.deadline) == ("Renamed", in_days(60))


def test_a_stored_draft_with_a_far_deadline_cannot_be_submitted(api, experiment, liaison, template):
    stored = make_request(experiment, liaison, deadline=dt.date(9999, 12, 31))

    response = api(liaison).post(
        f"{REQUESTS}{stored.pk}/transitions/", {"action": "submit"}, format="json"
    )

    assert response.status_code == 409, response.content  # not ready to submit, as a past one
    assert f"deadline: {too_far(FAR)}" in response.json()["reasons"]
    stored.refresh_from_db()
    assert stored.state == RequestState.DRAFT


def request_form(experiment, template, **fields) -> dict:
    group = experiment.groups.get(slug="oscillations")
    data = {
        "experiment": experiment.slug,
        "ticket": "RITM0012345",
        "physics_group": str(group.pk),
        "title": "MCC5.0 oscillation samples",
        "description": "",
        "deadline": str(in_days(30)),
        "priority": "normal",
        "intent": "save",
        "samples-TOTAL_FORMS": "1",
        "samples-INITIAL_FORMS": "0",
        "samples-MIN_NUM_FORMS": "0",
        "samples-MAX_NUM_FORMS": "1000",
        "samples-0-name": "nu-mu-cc",
        "samples-0-template": str(template.pk),
        "samples-0-events": "100000",
        "samples-0-events_per_job": "1000",
        "samples-0-parameters": "seed=7",
        "samples-0-input_dataset": "",
        "samples-0-output_dataset": "mcc5:nu-mu-cc",
    }
    data.update(fields)
    return data


def test_browser_form_refuses_a_far_deadline_next_to_the_field(
    client, experiment, liaison, template
):
    client.force_login(liaison)
    page = client.get(reverse("requests:new"))
    assert f'max="{limits.latest_deadline()}"' in page.content.decode()

    response = client.post(
        reverse("requests:new"), request_form(experiment, template, deadline=FAR)
    )

    assert response.status_code == 200
    assert response.context["form"].errors["deadline"] == [too_far(FAR)]
    assert not ProductionRequest.objects.exists()


def test_browser_form_refuses_10_12_one_event_jobs_next_to_the_field(
    client, experiment, liaison, template
):
    client.force_login(liaison)
    data = request_form(
        experiment,
        template,
        **{"samples-0-events": str(10**12), "samples-0-events_per_job": "1"},
    )

    response = client.post(reverse("requests:new"), data)

    assert response.status_code == 200
    errors = response.context["formset"].forms[0].errors["events_per_job"]
    assert "make 1000000000000 jobs" in errors[0] and "OPOS_MAX_JOBS_PER_SAMPLE" in errors[0]
    assert not ProductionRequest.objects.exists()


def test_campaign_api_and_page_refuse_a_far_deadline(api, client, experiment, operator):
    response = api(operator).post(
        CAMPAIGNS, {"experiment": experiment.slug, "name": "Far", "deadline": FAR}, format="json"
    )
    assert response.status_code == 400, response.content
    assert f"deadline: {too_far(FAR)}" in response.json()["reasons"]

    client.force_login(operator)
    page = client.post(
        reverse("campaigns:new"),
        {"experiment": experiment.pk, "name": "Far", "deadline": FAR, "priority": "normal"},
    )
    assert page.status_code == 200
    assert too_far(FAR) in page.context["form"].errors["deadline"]
    assert not Campaign.objects.exists()


def test_scheduling_refuses_a_stored_request_with_a_far_deadline(experiment, operator):
    campaign = CampaignFactory(experiment=experiment)
    request = approved_request(experiment)
    ProductionRequest.objects.filter(pk=request.pk).update(deadline=dt.date(9999, 12, 31))

    with pytest.raises(CampaignError) as refused:
        schedule_requests(campaign, [request.pk], operator)

    assert f"requests: {request.number}: deadline {too_far(FAR)}" in refused.value.reasons


# --- repairing a stored campaign ---------------------------------------------------------------


@pytest.fixture
def cancelled(experiment):
    """A cancelled campaign stored with a deadline no bound allows any more."""
    return CampaignFactory(
        experiment=experiment,
        state=CampaignState.CANCELLED,
        cancelled_at=timezone.now(),
        deadline=dt.date(9999, 12, 31),
    )


def test_an_operator_repairs_a_cancelled_campaigns_deadline_through_the_api(
    api, operator, cancelled
):
    client = api(operator)
    url = f"{CAMPAIGNS}{cancelled.pk}/"

    unexplained = client.patch(url, {"deadline": str(in_days(10))}, format="json")
    still_far = client.patch(url, {"deadline": "9000-01-01", "reason": "typo"}, format="json")
    other = client.patch(url, {"priority": "high", "reason": "urgent"}, format="json")
    fixed = client.patch(
        url, {"deadline": str(in_days(-3)), "reason": "the round ended then"}, format="json"
    )

    assert unexplained.status_code == 400 and "reason: required" in str(unexplained.json())
    assert still_far.status_code == 400 and "OPOS_DEADLINE_HORIZON_DAYS" in str(still_far.json())
    assert other.status_code == 409, other.content
    assert fixed.status_code == 200, fixed.content
    cancelled.refresh_from_db()
    assert cancelled.deadline == in_days(-3)  # history: a closed campaign's may be past
    assert cancelled.state == CampaignState.CANCELLED
    event = CampaignEvent.objects.get(campaign=cancelled, kind=CampaignEventKind.EDITED)
    assert event.changes == {"deadline": [FAR, str(in_days(-3))]}
    assert (event.actor, event.reason) == (operator, "the round ended then")


def test_an_operator_repairs_a_cancelled_campaigns_deadline_on_its_page(
    client, operator, liaison, cancelled
):
    client.force_login(operator)
    page = client.get(cancelled.get_absolute_url())
    assert "Repair the deadline" in page.content.decode()

    response = client.post(
        reverse("campaigns:edit", args=[cancelled.pk]),
        {"deadline": str(in_days(5)), "reason": "typo on the ticket"},
    )

    assert response.status_code == 302
    cancelled.refresh_from_db()
    assert cancelled.deadline == in_days(5)
    assert CampaignEvent.objects.filter(
        campaign=cancelled, kind=CampaignEventKind.EDITED, reason="typo on the ticket"
    ).exists()
    client.force_login(liaison)
    assert "Repair the deadline" not in client.get(cancelled.get_absolute_url()).content.decode()


def test_rows_stored_out_of_bounds_still_render_and_submit(client, experiment, operator):
    # Rows from before the bounds: the launched campaign and its request due 9999-12-31.
    campaign = CampaignFactory(experiment=experiment)
    request = approved_request(experiment)
    schedule_requests(campaign, [request.pk], operator)
    campaign_action(campaign, "launch", operator)
    Campaign.objects.filter(pk=campaign.pk).update(deadline=dt.date(9999, 12, 31))
    ProductionRequest.objects.filter(pk=request.pk).update(deadline=dt.date(9999, 12, 31))
    client.force_login(operator)

    for url in [
        "/campaigns/",
        f"/campaigns/{campaign.pk}/",
        "/monitoring/operations/",
        f"/monitoring/campaigns/{campaign.pk}/",
        f"/monitoring/requests/{request.number}/",
        f"/monitoring/experiments/{experiment.slug}/",
        f"/monitoring/experiments/{experiment.slug}/report/",
        f"/monitoring/experiments/{experiment.slug}/progress.csv",
        f"/requests/{request.number}/",
        f"/api/v1/campaigns/{campaign.pk}/progress/",
        f"/api/v1/campaigns/{campaign.pk}/plan/",
    ]:
        assert client.get(url).status_code == 200, url
    assert submit_ready()["jobs"] > 0


# --- events and jobs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ({"events": 10**12, "events_per_job": 1}, "events_per_job", "make 1000000000000 jobs"),
        ({"events": 10**12 + 1}, "events", "at most 1000000000000 (OPOS_MAX_EVENTS_PER_SAMPLE)"),
        (
            {"events": 10**11, "events_per_job": 10**10},
            "events_per_job",
            "at most 1000000000 (OPOS_MAX_EVENTS_PER_JOB)",
        ),
        ({"events": "9" * 40}, "events", "at most 1000000000000 (OPOS_MAX_EVENTS_PER_SAMPLE)"),
    ],
)
def test_events_and_jobs_per_sample_are_refused_by_name(
    api, experiment, liaison, template, line, field, message
):
    body = new_request(experiment, samples=[sample_line(**line)])

    response = api(liaison).post(REQUESTS, body, format="json")

    assert response.status_code == 400, response.content
    assert message in response.json()["samples"][0][field][0]
    assert not Sample.objects.exists()


def test_jobs_per_request_are_bounded(api, experiment, liaison, template, settings):
    settings.OPOS_MAX_JOBS_PER_REQUEST = 150
    lines = [
        sample_line(
            name=f"s{i}", output_dataset=f"dune:out-{i}", events=100_000, events_per_job=1000
        )
        for i in range(2)
    ]

    response = api(liaison).post(REQUESTS, new_request(experiment, samples=lines), format="json")

    assert response.status_code == 400, response.content
    assert response.json() == {
        "samples": [
            "the samples make 200 jobs together, more than the limit of 150 jobs per request "
            "(OPOS_MAX_JOBS_PER_REQUEST); split the request"
        ]
    }


def test_a_stored_sample_of_10_12_one_event_jobs_is_refused_by_arithmetic(experiment, operator):
    # Built, its job list would exhaust memory; counted, it is refused at once.
    campaign = CampaignFactory(experiment=experiment)
    request = approved_request(experiment, events=10**12, per_job=1)

    with pytest.raises(CampaignError) as refused:
        schedule_requests(campaign, [request.pk], operator)

    reason = refused.value.reasons[0]
    assert "1000000000000 events at 1 per job make 2500000000000 jobs over 3 stages" in reason
    assert "OPOS_MAX_JOBS_PER_SAMPLE" in reason
    assert not campaign.stages.exists()


def test_scheduling_bounds_the_jobs_of_a_request(experiment, operator, settings):
    settings.OPOS_MAX_JOBS_PER_REQUEST = 30
    campaign = CampaignFactory(experiment=experiment)
    request = approved_request(experiment, events=1000, per_job=100, samples=2)  # 25 + 25

    with pytest.raises(CampaignError) as refused:
        schedule_requests(campaign, [request.pk], operator)

    assert refused.value.reasons == [
        f"requests: {request.number}: its samples make 50 jobs together, more than the limit "
        "of 30 (OPOS_MAX_JOBS_PER_REQUEST); split the request"
    ]
    assert not campaign.stages.exists()


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    events=st.integers(1, 5000),
    per_job=st.integers(1, 600),
    files=st.lists(st.sampled_from([1, 2, 3, 7]), min_size=3, max_size=3),
)
def test_counted_jobs_are_the_jobs_planning_builds(experiment, events, per_job, files):
    stages = [
        (name, split, files[i] if split == SplitRule.FILES else None, walltime)
        for i, (name, split, _f, walltime) in enumerate(GEN_SIM_RECO)
    ]
    template = workflow(experiment, stages=stages)
    ordered = topological_order(template.stages.all())
    sample = Sample(events=events, events_per_job=min(per_job, events), output_dataset="o")

    plans, problems = plan_sample(sample, ordered, None, "x")

    assert not problems
    counted = limits.stage_job_counts(sample.events, sample.events_per_job, ordered)
    assert {plan.template_stage.id: plan.jobs for plan in plans} == counted
    template.delete()


# --- sizes that fit their columns ---------------------------------------------------------------


def test_a_dataset_whose_file_sizes_sum_past_2_63_is_refused(api, experiment, operator):
    files = [{"name": f"f{i}", "size": 2**62, "events": 1, "checksum": "0" * 64} for i in range(3)]

    response = api(operator).post(
        "/api/v1/datasets/",
        {"experiment": experiment.slug, "name": "huge", "files": files},
        format="json",
    )

    assert response.status_code == 400, response.content
    assert (
        f"files: the sizes add up to more than {limits.INT64_MAX}, what the dataset's "
        "size_bytes can hold" in response.json()["reasons"]
    )
    assert not Dataset.objects.exists()


def test_a_running_total_stops_at_the_column_maximum(experiment):
    dataset = Dataset.objects.create(
        experiment=experiment, name="full", size_bytes=limits.INT64_MAX - 5, events=7
    )

    Dataset.objects.filter(pk=dataset.pk).update(
        size_bytes=limits.saturating_add("size_bytes", 10),
        events=limits.saturating_add("events", 3),
    )

    dataset.refresh_from_db()
    assert (dataset.size_bytes, dataset.events) == (limits.INT64_MAX, 10)


# --- JSON bodies, integers and NUL characters ----------------------------------------------------


def post_raw(client, url: str, text: str):
    return client.post(url, text, content_type="application/json")


def test_deeply_nested_json_is_a_400(api, experiment, liaison, template):
    client = api(liaison)
    depth = limits.json_max_depth()

    recursion = post_raw(client, REQUESTS, '{"title": ' + "[" * 100_000 + "]" * 100_000 + "}")
    deep = post_raw(client, REQUESTS, '{"title": ' + "[" * depth + "]" * depth + "}")

    assert recursion.status_code == 400, recursion.content
    assert "OPOS_JSON_MAX_DEPTH" in str(recursion.json())
    assert deep.status_code == 400, deep.content
    assert deep.json() == {
        "title": [
            f"title{'[0]' * (depth - 1)}: nested deeper than {depth} levels (OPOS_JSON_MAX_DEPTH)"
        ]
    }
    assert not ProductionRequest.objects.exists()


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ('{"samples": [{"events": 1%s}]}' % ("0" * 30), "samples", "samples[0].events: an integer"),
        ('{"title": -1%s}' % ("0" * 19), "title", "beyond a 64-bit integer"),
        ('{"title": 1e999}', "title", "beyond a 64-bit float"),
        ('{"title": NaN}', None, "NaN is not a JSON number"),
        ('{"title": "a\\u0000b"}', "title", "title: NUL characters are not allowed"),
        ('{"samples": [{"na\\u0000me": 1}]}', "samples", "NUL characters are not allowed"),
    ],
)
def test_integer_overflow_and_nul_in_json_are_400s_naming_the_field(
    api, experiment, liaison, template, text, field, message
):
    response = post_raw(api(liaison), REQUESTS, text)

    assert response.status_code == 400, response.content
    body = response.json()
    assert message in (body[field][0] if field else body["detail"])
    assert not ProductionRequest.objects.exists()


def test_the_bounded_parser_serves_every_json_endpoint(api, operator, experiment):
    client = api(operator)
    nul = json.dumps({"name": "a\x00b", "experiment": experiment.slug, "deadline": str(in_days(5))})
    for url in (CAMPAIGNS, "/api/v1/datasets/", "/api/v1/failure-rules/"):
        response = post_raw(client, url, nul)
        assert response.status_code == 400, (url, response.content)
        assert "NUL characters are not allowed" in str(response.json()), url


def test_nul_in_the_browser_forms_is_a_400(client, experiment, liaison, operator, template):
    client.force_login(liaison)
    data = request_form(experiment, template, **{"samples-0-template": f"{template.pk}\x00"})

    response = client.post(reverse("requests:new"), data)

    assert response.status_code == 400
    assert b"NUL characters are not allowed" in response.content
    assert not ProductionRequest.objects.exists()
    client.force_login(operator)
    campaign = client.post(
        reverse("campaigns:new"),
        {"experiment": experiment.pk, "name": "a\x00b", "deadline": str(in_days(5))},
    )
    assert campaign.status_code == 400
    assert not Campaign.objects.exists()


def test_a_template_reference_with_nul_is_unknown_to_the_service(experiment, liaison, template):
    from django.core.exceptions import ValidationError

    from requests_app.services import validate_sample

    with pytest.raises(ValidationError) as refused:
        validate_sample(experiment, sample_line(template="mc-gen\x00"))

    assert refused.value.message_dict["template"] == [
        f"unknown workflow template for {experiment.name}"
    ]


def test_nothing_out_of_bounds_reaches_the_json_as_stored(api, experiment, liaison, template):
    # A body within every bound is stored as sent: the parser changes no value.
    body = new_request(experiment, samples=[sample_line(parameters={"seed": 7})])
    response = post_raw(api(liaison), REQUESTS, json.dumps(body))
    assert response.status_code == 201, response.content
    assert response.json()["samples"][0]["parameters"] == {"seed": 7}


@pytest.mark.parametrize(
    ("deadline", "problem"),
    [
        ("3650000d", "campaigns[0].deadline: at most 1825 days (OPOS_DEADLINE_HORIZON_DAYS)"),
        ("9" * 400 + "d", "campaigns[0].deadline: a duration like"),
        (".inf", "campaigns[0].deadline: a duration like"),
        (str(10**400), "campaigns[0].deadline: a duration like"),
    ],
)
def test_a_simulated_rounds_deadlines_are_bounded_too(deadline, problem):
    from campaigns.simulator import ScenarioError, load_scenario

    text = f"""
capacity: {{slurm: 10}}
campaigns:
  - name: a
    backend: slurm
    deadline: {deadline}
    stages: [{{jobs: 10, walltime: 1h}}]
"""
    with pytest.raises(ScenarioError) as refused:
        load_scenario(text)

    assert any(p.startswith(problem) for p in refused.value.problems), refused.value.problems


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cores", 32768, "stages[0].cores: a whole number from 1 to 32767 is required"),
        ("walltime_s", 2**31, "stages[0].walltime_s: a whole number from 1 to 2147483647"),
        ("memory_mb", 2**31, "stages[0].memory_mb: a whole number from 1 to 2147483647"),
    ],
)
def test_template_numbers_must_fit_their_columns(experiment, field, value, message):
    from campaigns.services import parse_template

    text = f"name: t\nstages:\n  - name: gen\n    {field}: {value}\n"
    with pytest.raises(CampaignError) as refused:
        parse_template(text, experiment)

    assert any(message in reason for reason in refused.value.reasons), refused.value.reasons

"""Property-based tests of the validators that stand between users and jobs.

For any input: no unhandled exception, only the validator's own refusal naming the field;
for good input: the value comes back as given (round trip), and validating it again
changes nothing. Examples per test: ``OPOS_PROPERTY_EXAMPLES`` (60 by default).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import string

import pytest
import yaml
from django.core.exceptions import ValidationError
from django.test import Client
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from campaigns.services import CampaignError, export_template, parse_template
from common import limits
from experiments.parameters import (
    MAX_STRING_LENGTH,
    NAME,
    SAFE_STRING,
    validate_parameters,
    validate_spec,
)
from opos_cli.errors import CliError
from opos_cli.requestfile import validate as validate_request_file
from requests_app.models import ProductionRequest, Sample
from requests_app.services import create_request, validate_sample
from tests.requests_app.builders import qualify, request_fields, sample_line

EXAMPLES = int(os.environ.get("OPOS_PROPERTY_EXAMPLES", "60"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Anything JSON or YAML can carry, including what breaks naive code.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=300),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
unsafe_text = st.text(min_size=1, max_size=50).filter(lambda t: not SAFE_STRING.fullmatch(t))


# --- parameters -------------------------------------------------------------------------------


@st.composite
def spec_and_values(draw):
    """A parameter specification and values that satisfy it."""
    specs, values = {}, {}
    for name in draw(st.lists(names, min_size=1, max_size=6, unique=True)):
        kind = draw(st.sampled_from(["int", "float", "str", "bool"]))
        if kind == "int":
            low = draw(st.integers(-(10**6), 10**6))
            high = draw(st.integers(low, low + 10**6))
            spec = {"type": "int", "min": low, "max": high}
            value = draw(st.integers(low, high))
        elif kind == "float":
            low = draw(st.floats(-1e6, 1e6))
            high = draw(st.floats(low, low + 1e6))
            spec = {"type": "float", "min": low, "max": high}
            value = draw(st.floats(low, high))
        elif kind == "str":
            spec = {"type": "str"}
            value = draw(
                st.text(alphabet=string.ascii_letters + string.digits + "_.,:/+=@%-", max_size=40)
            )
        else:
            spec = {"type": "bool"}
            value = draw(st.booleans())
        specs[name] = spec
        if draw(st.booleans()):
            values[name] = value
        else:
            spec["default"] = value
    return specs, values


@PROPERTY
@given(spec_and_values())
def test_good_parameters_round_trip(case):
    specs, values = case
    cleaned = validate_parameters(specs, values)
    assert set(cleaned) == set(specs)
    for name, value in values.items():
        assert cleaned[name] == value
        assert type(cleaned[name]) is type(value) or specs[name]["type"] == "float"
    assert validate_parameters(specs, cleaned) == cleaned


@PROPERTY
@given(spec_and_values(), json_values)
def test_any_value_is_cleaned_or_refused_by_name(case, junk):
    specs, values = case
    name = sorted(specs)[0]
    try:
        cleaned = validate_parameters(specs, {**values, name: junk})
    except ValidationError as exc:
        assert any(m.startswith(f"{name}:") for m in exc.messages), exc.messages
    else:
        assert set(cleaned) == set(specs)


@PROPERTY
@given(json_values)
def test_any_mapping_of_values_is_only_ever_a_validation_error(values):
    specs = {"seed": {"type": "int", "min": 1, "max": 1000, "default": 1}}
    with contextlib.suppress(ValidationError):
        validate_parameters(specs, values if isinstance(values, dict) else {"seed": values})


@PROPERTY
@given(unsafe_text)
def test_shell_metacharacters_never_pass(text):
    with pytest.raises(ValidationError) as refused:
        validate_parameters({"label": {"type": "str"}}, {"label": text})
    assert refused.value.messages[0].startswith("label:")


@PROPERTY
@given(st.text(min_size=MAX_STRING_LENGTH + 1, max_size=MAX_STRING_LENGTH + 50, alphabet="ab"))
def test_over_long_strings_are_refused(text):
    with pytest.raises(ValidationError):
        validate_parameters({"label": {"type": "str"}}, {"label": text})


@PROPERTY
@given(json_values)
def test_any_spec_is_accepted_or_refused_cleanly(spec):
    try:
        validate_spec(spec)
    except ValidationError as exc:
        assert exc.messages
    else:
        assert isinstance(spec, dict)
        assert all(isinstance(k, str) and NAME.fullmatch(k) for k in spec)


# --- sample lines and requests (database) ------------------------------------------------------

SAMPLE_FIELDS = {"name", "template", "events", "events_per_job", "parameters"}
SAMPLE_FIELDS |= {"input_dataset", "output_dataset"}
sample_values = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values,
        "template": st.one_of(json_values, st.just("mc-gen")),
        "events": st.one_of(json_values, st.integers(-(10**30), 10**30)),
        "events_per_job": st.one_of(json_values, st.integers(-(10**30), 10**30)),
        "parameters": json_values,
        "input_dataset": json_values,
        "output_dataset": json_values,
    },
)


@pytest.fixture
def qualified(experiment, liaison):
    qualify(experiment, liaison)
    return experiment


@pytest.mark.django_db
@PROPERTY
@given(data=sample_values)
def test_any_sample_line_is_cleaned_or_refused_by_field(qualified, data):
    try:
        cleaned = validate_sample(qualified, data)
    except ValidationError as exc:
        assert set(exc.message_dict) <= SAMPLE_FIELDS, exc.message_dict
    else:
        assert 0 < cleaned["events_per_job"] <= cleaned["events"] <= 10**12


@pytest.mark.django_db
@PROPERTY
@given(
    per_job=st.integers(1, limits.max_events_per_job()),
    jobs=st.integers(1, limits.max_jobs_per_sample()),
    seed=st.integers(1, 1000),
    name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,40}", fullmatch=True),
)
def test_good_sample_lines_round_trip(qualified, per_job, jobs, seed, name):
    # Within every bound: events, events per job and the jobs they make (one stage).
    events = min(per_job * jobs, limits.max_events_per_sample())
    assume(per_job <= events)
    line = sample_line(name=name, events=events, events_per_job=per_job, parameters={"seed": seed})
    cleaned = validate_sample(qualified, line)
    assert (cleaned["name"], cleaned["events"], cleaned["events_per_job"]) == (
        name,
        events,
        per_job,
    )
    assert cleaned["parameters"] == {"seed": seed}
    assert cleaned["output_dataset"] == line["output_dataset"]


REQUEST_FIELDS = {"ticket", "physics_group", "title", "description", "deadline", "priority"}
request_values = st.fixed_dictionaries(
    {},
    optional={
        "ticket": st.one_of(json_values, st.from_regex(r"[A-Z]{2,10}[0-9]{4,12}", fullmatch=True)),
        "physics_group": json_values,
        "title": json_values,
        "description": st.one_of(json_values, st.text(min_size=20001, max_size=20010)),
        "deadline": st.one_of(json_values, st.dates().map(dt.date.isoformat)),
        "priority": json_values,
    },
)


@pytest.mark.django_db
@PROPERTY
@given(fields=request_values, lines=st.lists(sample_values, max_size=2))
def test_bad_requests_are_refused_by_field_and_store_nothing(qualified, liaison, fields, lines):
    before = (ProductionRequest.objects.count(), Sample.objects.count())
    try:
        request = create_request(liaison, qualified, fields, lines)
    except ValidationError as exc:
        assert set(exc.message_dict) <= REQUEST_FIELDS | {"samples"}, exc.message_dict
        assert (ProductionRequest.objects.count(), Sample.objects.count()) == before
    else:
        assert request.samples.count() == len(lines)


@pytest.mark.django_db
@PROPERTY
@given(
    title=st.text(min_size=1, max_size=200).filter(lambda t: t.strip() == t and t),
    days=st.integers(0, limits.deadline_horizon_days()),
    priority=st.sampled_from(["low", "normal", "high", "critical"]),
)
def test_good_requests_round_trip(qualified, liaison, title, days, priority):
    deadline = dt.date.today() + dt.timedelta(days=days)
    fields = request_fields(title=title, deadline=deadline.isoformat(), priority=priority)
    request = create_request(liaison, qualified, fields, [sample_line()])
    request.refresh_from_db()
    assert (request.title, request.deadline, request.priority) == (title, deadline, priority)


# --- workflow templates (YAML import) ------------------------------------------------------------


@PROPERTY
@given(st.text(max_size=2000))
def test_any_text_is_imported_or_refused_with_reasons(text):
    try:
        parse_template(text, None)
    except CampaignError as exc:
        assert exc.detail
    # A document that parses needs registered code: reaching here without it is a bug.


@pytest.mark.django_db
@PROPERTY
@given(doc=json_values)
def test_any_yaml_document_is_refused_naming_its_lines(experiment, doc):
    text = yaml.safe_dump(doc, allow_unicode=True)
    with pytest.raises(CampaignError) as refused:
        parse_template(text, experiment)
    assert refused.value.reasons or refused.value.detail


@pytest.mark.django_db
@PROPERTY
@given(
    stage_fields=st.dictionaries(
        st.sampled_from(["cores", "memory_mb", "walltime_s", "files_per_job", "split", "x"]),
        json_values,
        max_size=4,
    )
)
def test_bad_stage_fields_are_named(qualified, stage_fields):
    from experiments.models import WorkflowTemplate

    template = WorkflowTemplate.objects.get(experiment=qualified)
    doc = yaml.safe_load(export_template(template))
    doc["stages"][0].update(stage_fields)
    try:
        parse_template(yaml.safe_dump(doc), qualified)
    except CampaignError as exc:
        assert all("stages[0]" in r or r.startswith("line") for r in exc.reasons), exc.reasons


@pytest.mark.django_db
def test_export_then_import_round_trips(qualified):
    from experiments.models import WorkflowTemplate

    template = WorkflowTemplate.objects.get(experiment=qualified)
    parsed = parse_template(export_template(template), qualified)
    stage = template.stages.get()
    assert parsed["name"] == template.name
    assert [(s["name"], s["code"], s["parameters"]) for s in parsed["stages"]] == [
        (stage.name, stage.code, stage.parameters)
    ]


# --- the command line's request file -------------------------------------------------------------


@PROPERTY
@given(json_values)
def test_any_request_file_is_checked_without_crashing(doc):
    try:
        payload = validate_request_file(doc, today=dt.date(2026, 1, 1))
    except CliError as exc:
        assert exc.reasons or str(exc)
    else:
        assert isinstance(payload, dict)


@PROPERTY
@given(
    events=st.integers(1, 10**12),
    title=st.text(min_size=1, max_size=80).filter(lambda t: t.strip() == t and t),
)
def test_good_request_files_round_trip(events, title):
    doc = {
        "experiment": "dune",
        "physics_group": "oscillations",
        "ticket": "RITM0012345",
        "title": title,
        "deadline": dt.date(2026, 6, 1),
        "samples": [
            {
                "name": "s1",
                "template": "mc-gen",
                "events": events,
                "events_per_job": 1,
                "output_dataset": "dune:out",
            }
        ],
    }
    payload = validate_request_file(yaml.safe_load(yaml.safe_dump(doc)), today=dt.date(2026, 1, 1))
    assert payload["title"] == title
    assert payload["samples"][0]["events"] == events
    assert payload["deadline"] == "2026-06-01"


# --- extreme values through the API, and the pages that list what was stored ------------------

extreme_ints = st.one_of(
    st.integers(-(10**30), 10**30),
    st.sampled_from(
        [0, -1, 1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**12, 10**12 + 1]
    ),
)
far_dates = st.one_of(
    st.dates().map(dt.date.isoformat),
    st.sampled_from(["9999-12-31", "0001-01-01", "99999-01-01", "2026-02-30", ""]),
)
odd_text = st.text(
    alphabet=st.one_of(st.characters(max_codepoint=0x7F), st.sampled_from("\x00\u202e\u200b")),
    max_size=30,
)
LISTINGS = [
    "/requests/",
    "/triage/",
    "/campaigns/",
    "/campaigns/datasets/",
    "/monitoring/operations/",
    "/monitoring/experiments/{slug}/",
    "/monitoring/experiments/{slug}/report/",
    "/monitoring/experiments/{slug}/progress.csv",
    "/api/v1/requests/",
    "/api/v1/campaigns/",
    "/api/v1/datasets/",
]


# Values at and around the bounds as often as far beyond them, so that some are stored.
near_dates = st.integers(-2, limits.deadline_horizon_days() + 2).map(
    lambda days: (dt.date.today() + dt.timedelta(days=days)).isoformat()
)


@pytest.mark.django_db
@settings(PROPERTY, max_examples=max(10, EXAMPLES // 4))
@given(
    events=st.one_of(st.integers(1, 10**7), extreme_ints),
    per_job=st.one_of(st.integers(1, 10**4), extreme_ints),
    size=st.one_of(st.integers(0, 2**62), extreme_ints),
    deadline=st.one_of(near_dates, far_dates),
    text=st.one_of(st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True), odd_text),
)
def test_extreme_values_through_the_api_never_fail_and_every_listing_still_answers(
    qualified, liaison, operator, api, events, per_job, size, deadline, text
):
    as_liaison, as_operator = api(liaison), api(operator)
    filed = as_liaison.post(
        "/api/v1/requests/",
        {
            "experiment": qualified.slug,
            **request_fields(title=text or "t", deadline=deadline),
            "samples": [sample_line(events=events, events_per_job=per_job, name=text or "s")],
        },
        format="json",
    )
    campaign = as_operator.post(
        "/api/v1/campaigns/",
        {
            "experiment": qualified.slug,
            "name": text,
            "deadline": deadline,
            "throttle": size if size % 2 else None,
        },
        format="json",
    )
    dataset = as_operator.post(
        "/api/v1/datasets/",
        {
            "experiment": qualified.slug,
            "name": f"ds-{abs(size) % 10**9}",
            "files": [
                {"name": "a", "size": size, "events": events, "checksum": "0" * 64},
                {"name": "b", "size": size, "events": per_job, "checksum": "0" * 64},
            ],
        },
        format="json",
    )
    for response in (filed, campaign, dataset):
        assert response.status_code in (201, 400), (response.status_code, response.content)
    pages = Client()
    pages.force_login(operator)
    for url in LISTINGS:
        listed = pages.get(url.format(slug=qualified.slug))
        assert listed.status_code == 200, (url, listed.status_code)

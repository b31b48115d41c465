"""Local checks of request files: every problem named, with where it is."""

from __future__ import annotations

import datetime as dt

import pytest

from opos_cli.errors import CliError, Exit
from opos_cli.requestfile import validate

TODAY = dt.date(2026, 11, 30)


def good(**changes):
    data = {
        "experiment": "dune",
        "physics_group": "oscillations",
        "ticket": "RITM0012345",
        "title": "MCC5.0",
        "deadline": dt.date(2026, 12, 20),  # YAML turns an unquoted date into a date
        "samples": [
            {
                "name": "numu",
                "template": "genie",
                "events": 1000,
                "events_per_job": 100,
                "output_dataset": "mcc/numu",
            }
        ],
    }
    data.update(changes)
    return data


def problems(data) -> list[str]:
    with pytest.raises(CliError) as info:
        validate(data, today=TODAY)
    assert info.value.code == Exit.USAGE
    return info.value.reasons


def test_a_good_file_becomes_the_api_payload():
    payload = validate(good(), today=TODAY)
    assert payload["deadline"] == "2026-12-20"
    assert payload["priority"] == "normal" and payload["submit"] is False
    assert payload["samples"][0] == {
        "name": "numu",
        "template": "genie",
        "events": 1000,
        "events_per_job": 100,
        "parameters": {},
        "input_dataset": "",
        "output_dataset": "mcc/numu",
    }


def test_a_draft_needs_no_samples():
    assert validate(good(samples=[]), today=TODAY)["samples"] == []


def test_every_problem_is_listed_at_once():
    data = good(priority="asap", submit="yes", deadline="20/12/2026")
    del data["title"]
    data["samples"][0].update(events=0, events_per_job="100", colour="blue")
    reasons = problems(data)
    assert "title: required" in reasons
    assert "priority: 'asap' is not one of low, normal, high, critical" in reasons
    assert "submit: must be true or false, not 'yes'" in reasons
    assert "deadline: '20/12/2026' is not a date (YYYY-MM-DD)" in reasons
    assert "samples[0].events: must be greater than zero, not 0" in reasons
    assert "samples[0].events_per_job: must be a whole number greater than zero, not '100'" in (
        reasons
    )
    assert any(r.startswith("samples[0]: unknown field 'colour'") for r in reasons)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"deadline": dt.date(2026, 11, 1)}, "deadline: 2026-11-01 is in the past"),
        ({"samples": "numu"}, "samples: must be a list of sample lines"),
        ({"samples": ["numu"]}, "samples[0]: must be a mapping of name, template, events, ..."),
        ({"submit": True, "samples": []}, "samples: a request is submitted with at least one"),
        ({"titel": "x"}, "unknown field 'titel' (did you mean 'title'?)"),
    ],
)
def test_single_problems(change, message):
    assert any(r.startswith(message) for r in problems(good(**change)))


def test_sample_lines_are_checked_line_by_line():
    line = good()["samples"][0]
    data = good(
        samples=[
            line,
            {**line, "events": 10, "events_per_job": 100},
            {**line, "parameters": {"tune": {"a": 1}}},
            {**line, "name": "other", "template": None},
        ]
    )
    reasons = problems(data)
    assert "samples[1].events_per_job: 100 is more than the events (10)" in reasons
    assert any(r.startswith("samples[2].parameters.tune: must be a single value") for r in reasons)
    assert any(r.startswith("samples[3].template: required") for r in reasons)
    assert "samples: the name 'numu' is used twice" in reasons


def test_not_a_mapping():
    with pytest.raises(CliError, match="must be a mapping of fields"):
        validate(["a", "list"], today=TODAY)

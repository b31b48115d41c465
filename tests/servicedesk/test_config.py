"""Connector settings: parsed once, wrong values named clearly."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from servicedesk.conf import load_config, parse_pairs
from servicedesk.connector import get_connector


def test_disabled_without_an_instance_url(settings):
    settings.SERVICENOW_INSTANCE_URL = ""
    config = load_config()
    assert not config.enabled
    assert get_connector(config) is None
    assert "SERVICENOW_INSTANCE_URL" in config.missing()


def test_defaults_follow_the_table(settings):
    settings.SERVICENOW_INSTANCE_URL = "https://lab.service-now.com/"
    settings.SERVICENOW_TABLE = "incident"
    settings.SERVICENOW_REQUESTER_EMAIL_FIELD = ""
    settings.SERVICENOW_STATE_MAP = "completed=6, on_hold="
    config = load_config()
    assert config.instance_url == "https://lab.service-now.com"
    assert config.requester_email_field == "caller_id.email"
    assert config.state_map["closed"] == "7" and config.state_map["completed"] == "6"
    assert "on_hold" not in config.state_map  # an empty value unmaps a state


def test_pairs_accept_strings_and_dicts():
    assert parse_pairs("X", "DUNE=dune, SBND = sbnd,") == {"DUNE": "dune", "SBND": "sbnd"}
    assert parse_pairs("X", {"a": "b"}) == {"a": "b"}
    assert parse_pairs("X", "") == {}
    with pytest.raises(ImproperlyConfigured, match="X: 'oops' is not of the form key=value"):
        parse_pairs("X", "oops")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SERVICENOW_TABLE", "sc_req_item; drop", "is not a table name"),
        ("SERVICENOW_EXPERIMENT_FIELD", "u_exp,sys_password", "is not a ServiceNow field name"),
        ("SERVICENOW_STATE_MAP", "finished=3", "are not request states"),
    ],
)
def test_bad_values_are_named(settings, name, value, message):
    setattr(settings, name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        load_config()

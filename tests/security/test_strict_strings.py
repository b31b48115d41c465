"""Whole-string checks: a trailing newline or a control character never passes.

``re.match(r"^...$")`` accepts ``"value\\n"`` (``$`` matches before a final newline); the
checks use ``fullmatch``. Usernames get Django's own validator wherever users are created.
"""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from campaigns.execution.catalogue import define_dataset
from campaigns.services import CampaignError
from experiments.parameters import validate_parameters, validate_spec

SPEC = {"generator": {"type": "str"}}
UNSAFE = ["genie\n", "genie\r\n", "gen\nie", "genie\t", "genie\x00", "genie\x7f", "genie\x1b[31m"]


@pytest.mark.parametrize("value", UNSAFE)
def test_parameter_strings_refuse_newlines_and_control_characters(value):
    with pytest.raises(ValidationError) as refused:
        validate_parameters(SPEC, {"generator": value})
    assert "generator: only letters, digits" in str(refused.value)


def test_a_plain_parameter_string_passes():
    assert validate_parameters(SPEC, {"generator": "genie-3.0.6"}) == {"generator": "genie-3.0.6"}


@pytest.mark.parametrize("name", ["seed\n", "se\ned", "seed\x00"])
def test_parameter_names_refuse_newlines(name):
    with pytest.raises(ValidationError):
        validate_spec({name: {"type": "int"}})
    with pytest.raises(ValidationError):
        validate_parameters({"seed": {"type": "int"}}, {name: 1})


@pytest.mark.parametrize(
    ("field", "entry"),
    [
        ("name", {"name": "flux_001.root\n", "size": 1, "checksum": "a" * 64}),
        ("checksum", {"name": "flux_001.root", "size": 1, "checksum": "a" * 64 + "\n"}),
    ],
)
def test_catalogue_entries_refuse_trailing_newlines(liaison, experiment, field, entry):
    with pytest.raises(CampaignError) as refused:
        define_dataset(liaison, experiment, "dune:flux", files=[entry])
    assert any(r.startswith(f"files[0].{field}") for r in refused.value.reasons)


def test_dataset_names_refuse_trailing_newlines(liaison, experiment):
    with pytest.raises(CampaignError) as refused:
        define_dataset(liaison, experiment, "dune:flux\n")
    assert any(r.startswith("name:") for r in refused.value.reasons)


# --- usernames ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "username",
    ["eve\n", "eve\nadmin", "<b>eve</b>", "eve smith", "eve\x00", "e" * 151, "eve;rm"],
)
def test_grant_role_refuses_invalid_usernames(db, username):
    with pytest.raises(CommandError) as refused:
        call_command("grant_role", username, "operator")
    assert "username" in str(refused.value)
    assert not get_user_model().objects.exists()


def test_grant_role_stores_the_normalised_username(db):
    # A full-width lookalike is stored as the plain name, as Django's own creation does.
    call_command("grant_role", " \uff56ictim ", "operator")
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["victim"]


def test_the_admin_refuses_invalid_usernames(client, admin_user):
    client.force_login(admin_user)
    before = get_user_model().objects.count()
    response = client.post(
        "/admin/auth/user/add/",
        {"username": "<b>eve</b>", "password1": "x-Strong-pass-9", "password2": "x-Strong-pass-9"},
    )
    assert response.status_code == 200
    assert b"Enter a valid username" in response.content
    assert get_user_model().objects.count() == before

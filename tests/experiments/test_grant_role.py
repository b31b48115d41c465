"""``manage.py grant_role``: creates users, grants roles, refuses bad input cleanly."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from experiments.models import GlobalRole, Membership


def test_creates_user_with_global_role(db):
    call_command("grant_role", "olga", "operator", "--password", "s3cret-pass")
    user = get_user_model().objects.get(username="olga")
    assert user.check_password("s3cret-pass")
    assert GlobalRole.objects.filter(user=user, role="operator").exists()
    assert not user.is_superuser


def test_admin_can_use_the_admin_site(db):
    call_command("grant_role", "root", "admin", "--password", "pw")
    user = get_user_model().objects.get(username="root")
    assert user.is_staff and user.is_superuser


def test_liaison_needs_existing_experiment(experiment):
    call_command("grant_role", "lia", "liaison", "--experiment", "dune")
    membership = Membership.objects.get(user__username="lia")
    assert (membership.experiment, membership.role) == (experiment, "liaison")
    # Granting again changes nothing; a new role replaces the old one.
    call_command("grant_role", "lia", "liaison", "--experiment", "dune")
    call_command("grant_role", "lia", "physicist", "--experiment", "dune")
    assert Membership.objects.get(user__username="lia").role == "physicist"
    assert Membership.objects.count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bob", "wizard"], "unknown role 'wizard'"),
        (["bob", "liaison"], "role 'liaison' needs --experiment SLUG"),
        (["bob", "liaison", "--experiment", "atlas"], "unknown experiment 'atlas'"),
        (["bob", "operator", "--experiment", "dune"], "role 'operator' is global"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(experiment, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("grant_role", *args)
    assert not get_user_model().objects.filter(username="bob").exists()


def test_command_line_exit_status_and_one_line(db, tmp_path):
    import os
    import subprocess
    import sys

    from django.conf import settings

    env = {**os.environ}
    result = subprocess.run(
        [sys.executable, "manage.py", "grant_role", "bob", "wizard"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "CommandError: unknown role 'wizard': choose one of operator, admin, liaison, physicist"
    ]


def test_grants_are_audited(experiment):
    from experiments.models import AuditEvent

    call_command("grant_role", "lia", "liaison", "--experiment", "dune")
    call_command("grant_role", "lia", "liaison", "--experiment", "dune")  # no change, no event
    events = list(AuditEvent.objects.filter(action="grant_role"))
    assert [(e.target, e.experiment) for e in events] == [("lia is liaison of dune", experiment)]

"""The monitoring demo's MCC5.0 rounds carry commitments: met or on track for three working
groups, at risk for cosmogenics (and announced on its ticket)."""

import io

import pytest
from django.core.management import call_command

from monitoring.models import Commitment
from requests_app.models import Comment

from . import demo_history

pytestmark = pytest.mark.django_db


def test_three_working_groups_keep_their_promises_and_one_is_at_risk(settings):
    settings.OPOS_BACKEND_CAPACITY = {"local": 20, "slurm": 1000, "htcondor": 5000}
    call_command("seed_demo", stdout=io.StringIO())
    demo_history.build()
    worst = {}
    for c in Commitment.objects.select_related("request__physics_group"):
        group = c.request.physics_group.slug
        worst.setdefault(group, set()).add(c.status)
    assert set(worst) == {"oscillations", "supernova", "proton-decay", "cosmogenics"}
    for group in ("oscillations", "supernova", "proton-decay"):
        assert worst[group] <= {"met", "on_track"}, (group, worst[group])
    assert "at_risk" in worst["cosmogenics"]
    notes = Comment.objects.filter(author=None, body__startswith="Commitment at risk")
    assert notes.filter(request__physics_group__slug="cosmogenics").exists()

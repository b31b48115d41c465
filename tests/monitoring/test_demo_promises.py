"""``seed_demo`` makes DUNE's MCC5.0 physics round with its commitments: on track for three
working groups, at risk for cosmogenics (and announced on its request, for its ticket)."""

import io

import pytest
from django.core.management import call_command

from monitoring.demo import ROUND
from monitoring.models import Commitment
from monitoring.services import commitments as promises
from requests_app.models import Comment, Transition

pytestmark = pytest.mark.django_db


def statuses() -> dict[str, set[str]]:
    worst: dict[str, set[str]] = {}
    for c in Commitment.objects.filter(request__campaign_link__campaign__name=ROUND).select_related(
        "request__physics_group"
    ):
        worst.setdefault(c.request.physics_group.slug, set()).add(c.status)
    return worst


def test_seed_demo_makes_a_round_kept_for_three_groups_and_at_risk_for_one():
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert f"Campaign {ROUND} (active): 4 requests promised" in out.getvalue()
    worst = statuses()
    assert set(worst) == {"oscillations", "supernova", "proton-decay", "cosmogenics"}
    for group in ("oscillations", "supernova", "proton-decay"):
        assert worst[group] <= {"met", "on_track"}, (group, worst[group])
    assert "at_risk" in worst["cosmogenics"]
    notes = Comment.objects.filter(author=None, body__startswith="Commitment at risk")
    assert notes.filter(request__physics_group__slug="cosmogenics").exists()
    # Each promise was confirmed by the operator, as the tracker proposed it (cosmogenics'
    # 100 % a day sooner), and the approvals give the service-desk clock a history.
    assert set(Commitment.objects.values_list("confirmed_by__username", flat=True)) == {"olivia"}
    assert (
        Transition.objects.filter(
            request__campaign_link__campaign__name=ROUND, action="approve"
        ).count()
        == 4
    )

    # Seeding again keeps the round and its promises as they are; the check finds no news.
    before = sorted(Commitment.objects.values_list("pk", "status"))
    call_command("seed_demo", stdout=io.StringIO())
    assert sorted(Commitment.objects.values_list("pk", "status")) == before
    assert promises.check().announced == 0

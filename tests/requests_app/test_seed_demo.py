"""``manage.py seed_demo`` builds the MCC5.0 demo and is idempotent."""

import io

import pytest
from django.apps import apps
from django.core import serializers
from django.core.management import CommandError, call_command


def snapshot() -> str:
    """Every row of every project model (passwords included), as stable JSON."""
    models = [
        m
        for m in apps.get_models()
        if m._meta.app_label in {"auth", "experiments", "requests_app", "campaigns", "monitoring"}
    ]
    rows = []
    for model in models:
        fields = [
            f.name
            for f in model._meta.concrete_fields
            if f.name not in {"created", "updated", "last_login", "date_joined"}
            and not getattr(f, "auto_now", False)
            and not getattr(f, "auto_now_add", False)
        ]
        rows.append(serializers.serialize("json", model.objects.order_by("pk"), fields=fields))
    return "\n".join(rows)


@pytest.mark.django_db
def test_seed_twice_gives_the_same_data():
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    first = snapshot()
    call_command("seed_demo", stdout=io.StringIO())
    assert snapshot() == first
    text = out.getvalue()
    assert "liam" in text and "liaison-demo-pass" in text
    assert "olivia" in text and "operator" in text
    assert "phoebe" in text and "physicist" in text


@pytest.mark.django_db
def test_seed_contents():
    from django.contrib.auth import get_user_model

    from experiments.models import Experiment
    from requests_app.models import ProductionRequest

    call_command("seed_demo", stdout=io.StringIO())
    dune = Experiment.objects.get(slug="dune")
    assert sorted(dune.groups.values_list("slug", flat=True)) == [
        "cosmogenics",
        "oscillations",
        "proton-decay",
        "supernova",
    ]
    assert Experiment.objects.count() >= 2
    # Four requests of the working groups, and the MCC5.0 physics round's four
    # (monitoring.demo: what is promised to each group).
    assert ProductionRequest.objects.filter(experiment=dune).count() == 8
    assert (
        ProductionRequest.objects.filter(experiment=dune, ticket__startswith="RITM00121").count()
        == 4
    )
    assert dune.codes.filter(approved=True).count() == 3
    assert get_user_model().objects.get(username="liam").check_password("liaison-demo-pass")


@pytest.mark.django_db
def test_seed_refuses_production(settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        call_command("seed_demo", stdout=io.StringIO())


@pytest.mark.django_db
def test_demo_requests_reach_their_states_through_the_transitions():
    from requests_app.models import ProductionRequest

    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())  # a second run moves nothing again
    history = {
        r.ticket: [
            (t.action, t.from_state, t.to_state, t.actor.username)
            for t in r.transitions.order_by("created", "id").select_related("actor")
        ]
        for r in ProductionRequest.objects.filter(experiment__slug="dune")
    }
    filed = ("create", "draft", "draft", "liam")
    submitted = ("submit", "draft", "submitted", "liam")
    approved = ("approve", "submitted", "approved", "olivia")
    assert history["RITM0012004"] == [filed]
    assert history["RITM0012002"] == [filed, submitted]
    assert history["RITM0012003"] == [filed, submitted]
    # The approved request passed the SLA checks approval makes.
    assert history["RITM0012001"][:3] == [filed, submitted, approved]

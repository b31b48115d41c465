"""The people and records the journeys start from, made through factories and services.

DUNE (SLA accepted) with two working groups and the real demo workflow (generation ->
simulation -> reconstruction, registered code owned by a DUNE liaison); training recorded
on job submission only, so approval waits for the monitoring training an operator records
in journey 2. SBND is the other experiment, with a physicist who must see none of DUNE.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from experiments.choices import TrainingTopic
from experiments.models import TrainingRecord
from tests.campaigns.exec_support import demo_template
from tests.factories import ExperimentFactory, PhysicsGroupFactory, UserFactory, grant


@dataclass
class World:
    dune: Any
    sbnd: Any
    oscillations: Any
    supernova: Any
    template: Any
    liaison: Any
    operator: Any
    physicist: Any
    outsider: Any  # a physicist of SBND


def build_world() -> World:
    dune = ExperimentFactory(slug="dune", name="DUNE")
    sbnd = ExperimentFactory(slug="sbnd", name="SBND")
    oscillations = PhysicsGroupFactory(experiment=dune, slug="oscillations", name="Oscillations")
    supernova = PhysicsGroupFactory(experiment=dune, slug="supernova", name="Supernova")
    PhysicsGroupFactory(experiment=sbnd, slug="crossx", name="Cross sections")
    liaison = grant(UserFactory(username="liam", first_name="Liam"), "liaison", dune)
    operator = grant(UserFactory(username="olivia", first_name="Olivia"), "operator")
    physicist = grant(UserFactory(username="phoebe", first_name="Phoebe"), "physicist", dune)
    outsider = grant(UserFactory(username="sam", first_name="Sam"), "physicist", sbnd)
    template = demo_template(dune)
    template.name = "mcc-demo"
    template.description = "Toy events: generation, simulation, reconstruction."
    template.save(update_fields=["name", "description"])
    TrainingRecord.objects.create(
        experiment=dune,
        held_on=timezone.localdate() - dt.timedelta(days=40),
        topics=[TrainingTopic.SUBMISSION],
    )
    return World(
        dune=dune,
        sbnd=sbnd,
        oscillations=oscillations,
        supernova=supernova,
        template=template,
        liaison=liaison,
        operator=operator,
        physicist=physicist,
        outsider=outsider,
    )


def days_ahead(days: int) -> str:
    return (timezone.localdate() + dt.timedelta(days=days)).isoformat()


def submitted_request(world: World, title: str, days: int, priority: str = "normal", **kw):
    """A request filed and submitted by the liaison through the services (journey 1's end)."""
    from requests_app.services import create_request, transition

    data = {
        "ticket": kw.pop("ticket", "RITM0012345"),
        "physics_group": kw.pop("group", "oscillations"),
        "title": title,
        "description": "Filed by the browser journeys.",
        "deadline": days_ahead(days),
        "priority": priority,
    }
    lines = kw.pop("lines", None) or [
        {
            "name": slug_of(title) + "-a",
            "template": world.template.pk,
            "events": 400,
            "events_per_job": 200,
            "parameters": {"seed": 7},
            "input_dataset": "",
            "output_dataset": f"dune:mcc5:{slug_of(title)}-a",
        }
    ]
    request = create_request(world.liaison, world.dune, data, lines)
    return transition(request, "submit", world.liaison)


def slug_of(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")

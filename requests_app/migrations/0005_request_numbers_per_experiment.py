"""Request numbers per experiment (``DUNE-2026-0042``) instead of one global sequence.

Existing requests keep their numbers (``REQ-2026-0042``), so links, tickets and e-mails
that name them keep resolving. The global counter is replaced by one per experiment and
year; where an experiment's new numbers could meet numbers already taken (an experiment
whose slug is ``req``, say), its counter starts after the highest of them.
"""

import re

import django.db.models.deletion
from django.db import migrations, models


def start_after_taken_numbers(apps, schema_editor):
    Experiment = apps.get_model("requests_app", "Experiment")
    ProductionRequest = apps.get_model("requests_app", "ProductionRequest")
    RequestCounter = apps.get_model("requests_app", "RequestCounter")
    for experiment in Experiment.objects.all():
        prefix = experiment.slug.upper()
        shape = re.compile(rf"{re.escape(prefix)}-([0-9]{{4}})-([0-9]+)")
        highest: dict[int, int] = {}
        numbers = ProductionRequest.objects.filter(number__startswith=f"{prefix}-")
        for number in numbers.values_list("number", flat=True):
            match = shape.fullmatch(number)
            if match:
                year, last = int(match[1]), int(match[2])
                highest[year] = max(last, highest.get(year, 0))
        for year, last in highest.items():
            RequestCounter.objects.update_or_create(
                experiment=experiment, year=year, defaults={"last": last}
            )


class Migration(migrations.Migration):

    dependencies = [
        ("requests_app", "0004_blocked_work"),
    ]

    operations = [
        migrations.DeleteModel(name="RequestCounter"),
        migrations.CreateModel(
            name="RequestCounter",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("year", models.PositiveSmallIntegerField()),
                ("last", models.PositiveIntegerField(default=0)),
                (
                    "experiment",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="requests_app.experiment",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("experiment", "year"), name="one_counter_per_year")
                ],
            },
        ),
        migrations.AlterField(
            model_name="productionrequest",
            name="number",
            field=models.CharField(editable=False, max_length=64, unique=True),
        ),
        migrations.RunPython(start_after_taken_numbers, migrations.RunPython.noop),
    ]

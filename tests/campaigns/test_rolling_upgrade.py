"""Workers of the previous version keep writing during an upgrade: the columns this version
added have database defaults, so their inserts (which leave them out) are accepted."""

from __future__ import annotations

import pytest
from django.db import connection, models

from campaigns.models import Campaign, Job, Stage
from tests.monitoring.builders import planned_campaign

pytestmark = pytest.mark.django_db

NEW_COLUMNS = {
    Campaign: {"fault", "test_jobs", "test_auto_continue", "test_phase", "test_result"},
    Stage: {"retried_succeeded", "retried_failed", "retried_lost", "retried_cancelled"},
    Job: {"host", "parameters"},
}


def insert_copy(model: type[models.Model], pk: int, changes: dict[str, str]) -> None:
    """Insert a copy of a row as the previous version would: without the new columns
    (and without the nullable ones added with them); ``changes`` are SQL per column."""
    left_out = NEW_COLUMNS[model] | {"fault_since", "completion_pct"}
    columns = [
        f.column
        for f in model._meta.concrete_fields
        if not f.primary_key and f.name not in left_out
    ]
    quote = connection.ops.quote_name
    values = [changes.get(c, quote(c)) for c in columns]
    table = quote(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608
            f"SELECT {', '.join(values)} FROM {table} WHERE id = %s",
            [pk],
        )


def test_rows_without_the_new_columns_are_accepted(experiment, operator):
    campaign = planned_campaign(experiment, operator, events=100, per_job=100)
    stage = Stage.objects.filter(campaign=campaign).order_by("position").first()
    job = Job.objects.filter(stage=stage).first()

    insert_copy(Campaign, campaign.pk, {"name": "'copy'"})
    insert_copy(Stage, stage.pk, {"position": "position + 10"})
    insert_copy(Job, job.pk, {"index": "999"})

    copied = Campaign.objects.get(experiment=experiment, name="copy")
    assert (copied.fault, copied.test_jobs, copied.test_auto_continue, copied.test_phase) == (
        "",
        0,
        False,
        "",
    )
    copy = Stage.objects.get(sample_id=stage.sample_id, position=stage.position + 10)
    assert [getattr(copy, f) for f in sorted(NEW_COLUMNS[Stage])] == [0, 0, 0, 0]
    copied_job = Job.objects.get(stage=stage, index=999)
    assert (copied_job.host, copied_job.parameters) == ("", {})

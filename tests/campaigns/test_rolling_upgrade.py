"""Workers of the previous version keep writing during an upgrade: the columns this version
added have database defaults, so their inserts (which leave them out) are accepted."""

from __future__ import annotations

import pytest
from django.db import connection, models

from campaigns.execution.catalogue import define_dataset
from campaigns.models import Campaign, Dataset, Job, OutputFile, Stage
from tests.monitoring.builders import planned_campaign

pytestmark = pytest.mark.django_db

NEW_COLUMNS = {
    Campaign: {"fault", "test_jobs", "test_auto_continue", "test_phase", "test_result"},
    Stage: {"retried_succeeded", "retried_failed", "retried_lost", "retried_cancelled"},
    Job: {"host", "batch_state", "batch_exit_code", "usage_source", "parameters"},
    Dataset: {"state", "state_reason"},
    OutputFile: {"invalid_reason", "from_invalid_input"},
}
# Added with them, nullable (NULL: no usage recorded yet, no lifecycle move yet).
NULLABLE = {
    "fault_since",
    "cpu_time_s",
    "core_time_s",
    "wall_time_s",
    "max_rss_kb",
    "usage_at",
    "state_since",
    "state_by",
    "invalidated",
    "invalidated_by",
    "completion_pct",
}


def insert_copy(model: type[models.Model], pk: int, changes: dict[str, str]) -> None:
    """Insert a copy of a row as the previous version would: without the new columns
    (and without the nullable ones added with them); ``changes`` are SQL per column."""
    left_out = NEW_COLUMNS[model] | NULLABLE
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
    copied = Job.objects.get(stage=stage, index=999)
    assert (copied.host, copied.batch_state, copied.batch_exit_code, copied.usage_source) == (
        "",
        "",
        "",
        "",
    )
    assert copied.cpu_time_s is None and copied.usage_at is None
    assert copied.parameters == {}


def test_catalogue_rows_without_the_lifecycle_columns_are_accepted(experiment, liaison):
    files = [{"name": "a.root", "size": 1, "checksum": "0" * 64, "events": 1}]
    dataset = define_dataset(liaison, experiment, "dune:upgrade", files=files)
    output = OutputFile.objects.get(dataset=dataset)

    insert_copy(Dataset, dataset.pk, {"name": "'dune:upgrade-copy'"})
    insert_copy(OutputFile, output.pk, {"name": "'b.root'"})

    copy = Dataset.objects.get(name="dune:upgrade-copy")
    assert (copy.state, copy.state_reason, copy.state_since) == ("open", "", None)
    row = OutputFile.objects.get(dataset=dataset, name="b.root")
    assert (row.invalidated, row.invalid_reason, row.from_invalid_input) == (None, "", False)

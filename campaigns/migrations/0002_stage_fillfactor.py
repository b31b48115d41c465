"""Room on every page of the stage table for its counters to be updated in place.

Execution adds to the stage counters on every poll, finalize and submission: thousands of
rows a minute. With full pages (PostgreSQL's default fillfactor of 100) each such update
writes the new row version on another page and a new entry into every one of the table's
eleven indexes; with room left on the page it is a heap-only (HOT) update that touches no
index. The stage counters of a poll that moved jobs of 3,000 stages took 63-80 ms with
full pages and 31-45 ms with half-full ones (bench/poll.py's database). The table is
small (one row per stage), so the space is cheap. PostgreSQL only: SQLite has no such
setting.
"""

from django.db import migrations


def set_fillfactor(apps, schema_editor, value: int) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    table = schema_editor.quote_name(apps.get_model("campaigns", "Stage")._meta.db_table)
    schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = {int(value)})")


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0001_initial")]

    operations = [
        migrations.RunPython(
            lambda apps, schema_editor: set_fillfactor(apps, schema_editor, 50),
            lambda apps, schema_editor: set_fillfactor(apps, schema_editor, 100),
        )
    ]

"""Writing many rows with different values in few statements.

On PostgreSQL one ``UPDATE ... FROM (VALUES ...)`` per 2000 rows: the poller and finalize
write thousands of jobs per cycle, and ``bulk_update`` builds a ``CASE WHEN`` per row and
field, in batches kept small by parameter limits. Elsewhere (SQLite) ``bulk_update`` in the
batches the database allows.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, models

PG_BATCH = 2000


def bulk_set(
    objs: Sequence[models.Model], fields: Sequence[str], batch_size: int = PG_BATCH
) -> int:
    """Write ``fields`` of every object (by primary key); return the statements issued."""
    if not objs:
        return 0
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model._default_manager.bulk_update(objs, list(fields))
        return -1
    qn = connection.ops.quote_name
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    pk = meta.pk
    names = ", ".join(["pk", *(qn(c.column) for c in columns)])
    # Explicit casts: a VALUES list has no column types, and a NULL or a string literal
    # must still land in a timestamp or integer column.
    sets = ", ".join(f"{qn(c.column)} = v.{qn(c.column)}::{c.db_type(connection)}" for c in columns)
    statements = 0
    with connection.cursor() as cursor:
        for start in range(0, len(objs), batch_size):
            chunk = objs[start : start + batch_size]
            row = "(" + ", ".join(["%s"] * (len(columns) + 1)) + ")"
            params: list[object] = []
            for obj in chunk:
                params.append(obj.pk)
                params.extend(
                    c.get_db_prep_save(getattr(obj, c.attname), connection) for c in columns
                )
            cursor.execute(
                f"UPDATE {qn(meta.db_table)} AS t SET {sets} "  # noqa: S608 - names from the model
                f"FROM (VALUES {', '.join([row] * len(chunk))}) AS v({names}) "
                f"WHERE t.{qn(pk.column)} = v.pk::{pk.db_type(connection)}",
                params,
            )
            statements += 1
    return statements

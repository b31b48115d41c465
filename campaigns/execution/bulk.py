"""Writing many rows with different values in few statements.

On PostgreSQL one ``UPDATE ... FROM unnest(...)`` per 10,000 rows, one array per column:
the poller and finalize write thousands of jobs per cycle, and ``bulk_update`` builds a
``CASE WHEN`` per row and field, in batches kept small by parameter limits. (``VALUES``
lists of 2,000 rows, used before, took 2.6 times the arrays' database time for a poll of
10,000 changes, plus the client's time splitting megabytes of SQL text: bench/poll.py.)
Elsewhere (SQLite) ``bulk_update`` in the batches the database allows. ``bulk_add`` adds
to counters (the stage counters) the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connection, models
from django.db.models import F

PG_BATCH = 10_000
VALUES_BATCH = 2000  # rows per VALUES list (JSON columns, which arrays do not carry)


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
    columns = [model._meta.get_field(name) for name in fields]
    if any(isinstance(c, models.JSONField) for c in columns):
        return _set_from_values(objs, columns, min(batch_size, VALUES_BATCH))
    rows = [
        (obj.pk, *(c.get_db_prep_save(getattr(obj, c.attname), connection) for c in columns))
        for obj in objs
    ]
    return bulk_set_rows(model, fields, rows, batch_size)


def bulk_set_rows(
    model: type[models.Model],
    fields: Sequence[str],
    rows: Sequence[Sequence[Any]],
    batch_size: int = PG_BATCH,
) -> int:
    """``bulk_set`` from rows ``(pk, value, ...)`` instead of model instances.

    For the hot paths: building 10,000 model instances costs more than writing them. The
    values must be what the driver takes (str, int, aware datetime, None), not JSON.
    """
    if not rows:
        return 0
    if connection.vendor != "postgresql":
        objs = [model(pk=row[0], **dict(zip(fields, row[1:], strict=True))) for row in rows]
        model._default_manager.bulk_update(objs, list(fields))
        return -1
    qn = connection.ops.quote_name
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    pk = meta.pk
    table = qn(meta.db_table)
    names = ", ".join(["pk", *(qn(c.column) for c in columns)])
    sets = ", ".join(f"{qn(c.column)} = v.{qn(c.column)}" for c in columns)
    arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in (pk, *columns))
    statements = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            cursor.execute(
                f"UPDATE {table} AS t SET {sets} "  # noqa: S608 - names from the model
                f"FROM unnest({arrays}) AS v({names}) WHERE t.{qn(pk.column)} = v.pk",
                [list(column) for column in zip(*chunk, strict=True)],
            )
            statements += 1
    return statements


def _set_from_values(objs: Sequence[models.Model], columns: list, batch_size: int) -> int:
    """``bulk_set`` with a ``VALUES`` list, for columns that arrays do not carry (JSON)."""
    qn = connection.ops.quote_name
    meta = type(objs[0])._meta
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


def bulk_add(model: type[models.Model], deltas: Mapping[int, Mapping[str, int]]) -> None:
    """Add ``{pk: {field: n}}`` to integer fields, e.g. the stage counters after a poll.

    On PostgreSQL the rows are first locked in primary-key order (so two writers never
    deadlock on them), then one ``UPDATE ... FROM unnest(...)`` adds every row's deltas: a
    poll that moved jobs of 3,000 stages costs two statements, not 3,000. Elsewhere one
    ``UPDATE ... SET f = f + n`` per row. Call it inside the transaction of the change.
    """
    rows = {pk: {f: n for f, n in d.items() if n} for pk, d in deltas.items()}
    rows = {pk: d for pk, d in rows.items() if d}
    if not rows:
        return
    manager = model._default_manager
    if connection.vendor != "postgresql":
        for pk, d in rows.items():
            manager.filter(pk=pk).update(**{f: F(f) + n for f, n in d.items()})
        return
    qn = connection.ops.quote_name
    meta = model._meta
    pk = meta.pk
    names = sorted({f for d in rows.values() for f in d})
    fields = [meta.get_field(name) for name in names]
    ids = sorted(rows)
    table, key = qn(meta.db_table), qn(pk.column)
    sets = ", ".join(f"{qn(f.column)} = t.{qn(f.column)} + v.{qn(f.column)}" for f in fields)
    arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in (pk, *fields))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {key} FROM {table} WHERE {key} = ANY(%s) ORDER BY {key} FOR UPDATE",  # noqa: S608 - names from the model
            [ids],
        )
        cursor.execute(
            f"UPDATE {table} AS t SET {sets} "  # noqa: S608 - names from the model
            f"FROM unnest({arrays}) AS v(pk, {', '.join(qn(f.column) for f in fields)}) "
            f"WHERE t.{key} = v.pk",
            [ids, *([rows[i].get(name, 0) for i in ids] for name in names)],
        )


def array_literal(values: Sequence[str | int | None]) -> str:
    """A PostgreSQL array literal of ``values`` (str, int or None), to bind as one
    parameter and cast (``%s::text[]``).

    The driver adapts a Python list element by element in Python: about 1.2 us each,
    so the nine arrays of a poll of 10,000 changes cost 50 ms to send, against 10 ms
    for their text made here with ``str.join`` (bench/poll.py). It is a bound value that
    PostgreSQL's array parser reads, never SQL: strings are double-quoted with ``\\`` and
    ``"`` escaped, so commas, braces, quotes and spaces arrive as they were; None is NULL.
    """
    if not values:
        return "{}"
    first = next((v for v in values if v is not None), None)
    if isinstance(first, int) and not isinstance(first, bool):
        if None in values:
            return "{" + ",".join("NULL" if v is None else str(int(v)) for v in values) + "}"
        return "{" + ",".join(map(str, map(int, values))) + "}"
    return "{" + ",".join(map(_quoted, values)) + "}"


def _quoted(value: str | int | None) -> str:
    if value is None:
        return "NULL"
    text = str(value)
    if "\\" in text or '"' in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'

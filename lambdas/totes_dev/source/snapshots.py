"""Load a real totesys snapshot into the strict source schema, or bring a loaded one up to date.

Every table goes through a temporary staging table (COPY, by column name) and is then upserted
by primary key in foreign-key order, all in ONE transaction with every constraint enforced. So an
empty database receives the snapshot as it is, and a database already holding an older snapshot
ends up with exactly the newer rows: new rows are inserted and changed rows take the snapshot's
values *including its last_updated*, which is how the real silent edits (content changed,
last_updated not) are reproduced. Rows the snapshot does not hold are left alone: the real data
never deletes. Any row that cannot be converted or violates a constraint stops the load with a
:class:`SnapshotLoadError` naming file, table, row and column, and nothing of the load remains.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
from psycopg import sql

from totes.db import connect
from totes.settings import DbSettings
from totes.tables import LOAD_ORDER, SourceTable, source_table
from totes_dev.errors import SnapshotLoadError
from totes_dev.source.convert import RowLocator, strict_table
from totes_dev.source.formats import RawChunk, read_snapshot, snapshot_path
from totes_dev.source.pgcopy import CopyRowError, copy_arrow
from totes_dev.source.schema import reset_sequences, row_counts

__all__ = ["load_snapshot", "snapshot_path"]

ROW_COLUMN = "_snapshot_row"
_KEY_DETAIL = re.compile(r"Key \((\w+)\)=\((.*?)\)")


def load_snapshot(db: DbSettings, path: Path) -> dict[str, int]:
    """Upsert the snapshot at ``path`` into ``db``; returns rows per table afterwards."""
    chunks = read_snapshot(path)
    with connect(db, error=SnapshotLoadError, role="source") as conn:
        with conn.transaction():
            for name in LOAD_ORDER:
                _load_table(conn, source_table(name), chunks[name])
            reset_sequences(conn)
        return row_counts(conn)


def _stage(conn: psycopg.Connection, spec: SourceTable) -> sql.Identifier:
    stage = sql.Identifier(f"_stage_{spec.name}")
    try:
        conn.execute(
            sql.SQL("CREATE TEMP TABLE {} (LIKE {}, {} bigint NOT NULL) ON COMMIT DROP").format(
                stage, sql.Identifier(spec.name), sql.Identifier(ROW_COLUMN)
            )
        )
    except psycopg.errors.UndefinedTable:
        raise SnapshotLoadError(
            "the database has no totesys schema (run `totes source create` first)",
            table=spec.name,
        ) from None
    return stage


def _load_table(conn: psycopg.Connection, spec: SourceTable, chunks: Iterable[RawChunk]) -> None:
    stage = _stage(conn, spec)
    origin: str = "snapshot"
    locate: RowLocator = _plain_row
    for chunk in chunks:
        origin, locate = chunk.origin, chunk.locate
        rows = strict_table(
            chunk.rows, spec, origin=chunk.origin, locate=chunk.locate, first_row=chunk.first_row
        )
        numbers = np.arange(chunk.first_row, chunk.first_row + rows.num_rows, dtype=np.int64)
        rows = rows.append_column(ROW_COLUMN, pa.array(numbers))
        try:
            copy_arrow(conn, stage, rows)
        except CopyRowError as exc:
            index = exc.row if exc.row is not None else 0
            raise SnapshotLoadError(
                f"{origin}: {locate(chunk.first_row + index)}, column {exc.column}: {exc}",
                table=spec.name,
                key=rows.column(spec.primary_key)[index].as_py() if exc.row is not None else None,
            ) from None
    _refuse_repeated_keys(conn, spec, stage, origin, locate)
    _upsert(conn, spec, stage, origin, locate)


def _plain_row(index: int) -> str:
    return f"row {index + 1}"


def _refuse_repeated_keys(
    conn: psycopg.Connection,
    spec: SourceTable,
    stage: sql.Identifier,
    origin: str,
    locate: RowLocator,
) -> None:
    pk, row = sql.Identifier(spec.primary_key), sql.Identifier(ROW_COLUMN)
    found = conn.execute(
        sql.SQL(
            "SELECT {pk}, min({row}), max({row}) FROM {stage} GROUP BY {pk} "
            "HAVING count(*) > 1 ORDER BY 3 LIMIT 1"
        ).format(pk=pk, row=row, stage=stage)
    ).fetchone()
    if found:
        key, first, again = found
        raise SnapshotLoadError(
            f"{origin}: {locate(again)}, column {spec.primary_key}: "
            f"primary key {key} already used by {locate(first)}",
            table=spec.name,
            key=key,
        )


def _upsert(
    conn: psycopg.Connection,
    spec: SourceTable,
    stage: sql.Identifier,
    origin: str,
    locate: RowLocator,
) -> None:
    table, pk = sql.Identifier(spec.name), sql.Identifier(spec.primary_key)
    columns = [sql.Identifier(name) for name in spec.column_names]
    changing = [sql.Identifier(name) for name in spec.column_names if name != spec.primary_key]
    statement = sql.SQL(
        "INSERT INTO {table} AS t ({cols}) SELECT {cols} FROM {stage} ORDER BY {pk} "
        "ON CONFLICT ({pk}) DO UPDATE SET {sets} "
        "WHERE ({current}) IS DISTINCT FROM ({incoming})"
    ).format(
        table=table,
        cols=sql.SQL(", ").join(columns),
        stage=stage,
        pk=pk,
        sets=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(c) for c in changing),
        current=sql.SQL(", ").join(sql.SQL("t.{}").format(c) for c in changing),
        incoming=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(c) for c in changing),
    )
    try:
        with conn.transaction():  # a savepoint, so the failing row can still be looked up
            conn.execute(statement)
    except psycopg.errors.IntegrityError as exc:
        detail = exc.diag.message_detail or ""
        raise SnapshotLoadError(
            f"{origin}: {_offending_row(conn, spec, stage, detail, locate)}: "
            f"{exc.diag.message_primary} ({detail})",
            table=spec.name,
        ) from None


def _offending_row(
    conn: psycopg.Connection,
    spec: SourceTable,
    stage: sql.Identifier,
    detail: str,
    locate: RowLocator,
) -> str:
    """The staged row holding the key PostgreSQL's detail names, as "row N, column c"."""
    found = _KEY_DETAIL.search(detail)
    if not found or found.group(1) not in spec.column_names:
        return "a row"
    column = found.group(1)
    row = conn.execute(
        sql.SQL("SELECT {} FROM {} WHERE {}::text = %s ORDER BY 1 LIMIT 1").format(
            sql.Identifier(ROW_COLUMN), stage, sql.Identifier(column)
        ),
        (found.group(2),),
    ).fetchone()
    where = locate(int(row[0])) if row else "a row"
    return f"{where}, column {column}"

"""Stream Arrow tables into PostgreSQL with COPY, shared by the loader, generator and simulator.

pyarrow writes the CSV (vectorised, no Python per row) and PostgreSQL parses it. In PostgreSQL's
CSV format an unquoted empty field is NULL and a quoted one is an empty string; pyarrow quotes
every string, so the two never mix up.
"""

from __future__ import annotations

import io
import re

import psycopg
import pyarrow as pa
import pyarrow.csv as pcsv
from psycopg import sql

from totes.errors import reason

COPY_CHUNK_ROWS = 50_000

_COPY_CONTEXT = re.compile(r"line (\d+)(?:, column (\w+))?")


class CopyRowError(Exception):
    """A COPY failed on one row: ``row`` is its 0-based index in the table given to COPY."""

    def __init__(self, row: int | None, column: str | None, cause: psycopg.Error) -> None:
        self.row, self.column, self.cause = row, column, cause
        super().__init__(reason(cause))


def copy_arrow(
    conn: psycopg.Connection,
    target: sql.Composable,
    rows: pa.Table,
    *,
    chunk_rows: int = COPY_CHUNK_ROWS,
) -> None:
    """COPY ``rows`` into ``target`` by column name, ``chunk_rows`` at a time.

    Each chunk has its own header line, so a COPY error's "line N" is row N - 1 of its chunk.
    """
    columns = sql.SQL(", ").join(sql.Identifier(name) for name in rows.column_names)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true)").format(target, columns)
    for start in range(0, max(rows.num_rows, 1), chunk_rows):
        chunk = rows.slice(start, chunk_rows)
        if chunk.num_rows == 0:
            return
        buffer = io.BytesIO()
        pcsv.write_csv(chunk, buffer, pcsv.WriteOptions(include_header=True))
        try:
            with conn.cursor().copy(statement) as copy:
                copy.write(buffer.getbuffer())
        except psycopg.Error as exc:
            found = _COPY_CONTEXT.search(exc.diag.context or "")
            row = start + int(found.group(1)) - 2 if found else None
            raise CopyRowError(row, found.group(2) if found else None, exc) from exc

"""Fill an empty totesys database with synthetic data shaped like the real one.

History window: always the real one, the seed day 2022-11-03 up to 2024-11-15 14:40:10.188 (the
newest created_at of the real 2024-11-15 snapshot), and ``scale`` multiplies the daily rates of
sales, purchases and designs. So scale 1 has the real snapshot's volume, scale 100 a hundred times
as many orders on the same ~530 weekdays, with dates that stay in the real range (dim_date needs
no extension). The six lookup tables keep their real sizes at every scale. Above scale ~30 a
minute can hold several orders of one table, which the real once-a-minute writer never did.

Rows are generated and COPYed chronologically in chunks of ``CHUNK_DAYS`` days, so memory stays
bounded by one chunk whatever the scale; the whole fill is one transaction, so a failure leaves
the database empty.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import psycopg
import pyarrow as pa
from psycopg import sql

from totes.db import connect
from totes.settings import DbSettings
from totes_dev.errors import DevSourceError
from totes_dev.source import synthetic
from totes_dev.source.pgcopy import copy_arrow
from totes_dev.source.schema import reset_sequences, row_counts

CHUNK_DAYS = 28


def generate(
    db: DbSettings,
    *,
    scale: float,
    seed: int,
    on_chunk: Callable[[int, str], None] | None = None,
) -> dict[str, int]:
    """Generate ``scale`` times the real volume, deterministically for ``seed``; rows per table.

    ``on_chunk(total, last_day)`` is told of each chunk of days written (progress)."""
    if not scale > 0:
        raise DevSourceError(f"generate: scale must be positive, got {scale}")
    rng = np.random.default_rng(seed)
    cursor = synthetic.Cursor()
    with connect(db, error=DevSourceError, role="source") as conn:
        non_empty = {name: n for name, n in row_counts(conn).items() if n}
        if non_empty:
            raise DevSourceError(f"generate: the database already holds rows: {non_empty}")
        with conn.transaction():
            _copy_all(conn, synthetic.seed_day(rng, cursor))
            one_day = np.timedelta64(1, "D")
            end = synthetic.HISTORY_END.astype("datetime64[D]") + one_day
            day = synthetic.SEED_DAY + one_day
            chunks = -(-int((end - day) / one_day) // CHUNK_DAYS)
            while day < end:
                chunk_end = min(day + CHUNK_DAYS * one_day, end)
                _copy_all(conn, synthetic.history_chunk(rng, cursor, day, chunk_end, scale=scale))
                day = chunk_end
                if on_chunk is not None:
                    on_chunk(chunks, str(chunk_end - one_day))
            reset_sequences(conn)
        return row_counts(conn)


def _copy_all(conn: psycopg.Connection, tables: dict[str, pa.Table]) -> None:
    for name, rows in tables.items():  # already in foreign-key order
        copy_arrow(conn, sql.Identifier(name), rows)

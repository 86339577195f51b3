"""Load: the first processed batch into a migrated warehouse, next to raw ``COPY ... FROM STDIN``.

The baselines COPY the same rows (the processed batch, converted to CSV beforehand and not
timed) into the same tables of another freshly migrated warehouse, once with its foreign keys
and once with every foreign key dropped: the first is what a loader that checks references
must beat, the second the floor of writing these rows at all.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql

from benchmarks.common import committed_tables, drop_database, new_database, peak_rss_mb
from totes.contracts.warehouse import LOAD_ORDER
from totes.lake import Lake, read_parquet
from totes.load import merge
from totes.load.loader import arrow_to_csv, load_pending
from totes.load.migrations import migrate
from totes.settings import DbSettings


def measure_load(warehouse: DbSettings, processed: Lake) -> dict[str, Any]:
    """Child process: load every pending batch into an already migrated warehouse."""
    started = time.perf_counter()
    summary = load_pending(warehouse, processed)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows_out": sum(summary["rows"].values()),
        "peak_rss_mb": peak_rss_mb(),
    }


def _drop_foreign_keys(conn: psycopg.Connection) -> None:
    found = conn.execute(
        "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'f'"
    ).fetchall()
    for table, name in found:
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.SQL(table), sql.Identifier(name)
            )
        )
    conn.commit()


def copy_payload(processed: Lake) -> tuple[list[tuple[Any, bytes]], int]:
    """The newest processed batch as CSV per warehouse table, in foreign-key order."""
    tables = committed_tables(processed)
    payload: list[tuple[Any, bytes]] = []
    rows = 0
    for spec in LOAD_ORDER:
        entry = tables.get(spec.name) or {}
        if entry.get("key"):
            data = read_parquet(processed, entry["key"])
            payload.append((spec, arrow_to_csv(spec, data, key=entry["key"])))
            rows += data.num_rows
    return payload, rows


def raw_copy_in(
    admin: DbSettings, payload: list[tuple[Any, bytes]], *, foreign_keys: bool
) -> float:
    """Seconds to COPY the payload into a freshly migrated warehouse, in one transaction."""
    target = new_database(admin, "copy")
    try:
        migrate(target)
        with psycopg.connect(**target.conninfo()) as conn:
            if not foreign_keys:
                _drop_foreign_keys(conn)
            started = time.perf_counter()
            with conn.cursor() as cur:
                for spec, data in payload:
                    columns = ", ".join(merge.ident(c.name) for c in spec.staged_columns)
                    with cur.copy(
                        f"COPY {merge.ident(spec.name)} ({columns}) FROM STDIN (FORMAT csv)"
                    ) as copy:
                        copy.write(data)
            conn.commit()
            return time.perf_counter() - started
    finally:
        drop_database(admin, target)

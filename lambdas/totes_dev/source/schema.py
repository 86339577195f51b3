"""Create the real totesys schema in an empty database."""

from __future__ import annotations

from importlib import resources

import psycopg

from totes.db import connect
from totes.settings import DbSettings
from totes.tables import LOAD_ORDER, source_table
from totes_dev.errors import DevSourceError


def schema_sql() -> str:
    return resources.files("totes_dev.source").joinpath("source_schema.sql").read_text()


def create_schema(db: DbSettings) -> None:
    with connect(db, error=DevSourceError, role="source") as conn:
        conn.execute(schema_sql())


def row_counts(conn: psycopg.Connection) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in LOAD_ORDER:
        table = source_table(name)
        row = conn.execute(f"SELECT count(*) FROM {table.quoted}").fetchone()
        counts[name] = int(row[0]) if row else 0
    return counts


def has_schema(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('public.payment') IS NOT NULL").fetchone()
    return bool(row and row[0])


def reset_sequences(conn: psycopg.Connection) -> None:
    """Point every serial sequence at its table's largest id, after inserts with explicit ids."""
    for name in LOAD_ORDER:
        table = source_table(name)
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence(%s, %s), coalesce(max({table.primary_key}), 1),"
            f" max({table.primary_key}) IS NOT NULL) FROM {table.quoted}",
            (table.quoted, table.primary_key),
        )


def fingerprints(conn: psycopg.Connection) -> dict[str, str]:
    """md5 of each table's rows in id order: equal fingerprints mean equal content."""
    out: dict[str, str] = {}
    for name in LOAD_ORDER:
        table = source_table(name)
        row = conn.execute(
            f"SELECT coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x.{table.primary_key})), '')"
            f" FROM {table.quoted} x"
        ).fetchone()
        out[name] = str(row[0]) if row else ""
    return out

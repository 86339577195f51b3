"""Reading the source with psycopg: the snapshot, the catalog and the cheap change check.

Everything runs inside one read-only REPEATABLE READ transaction opened by the caller; the rows
themselves are read by :mod:`totes.extract.rows` on a connection that joins the snapshot this
one exports, so the 11 tables are read as one consistent snapshot. Driver errors become
:class:`SourceError` naming the step.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import psycopg

from totes.contracts.ingestion import Fingerprint
from totes.errors import SourceError, reason
from totes.extract.drift import CatalogColumn
from totes.extract.plan import snapshot_id
from totes.extract.sql import COLUMNS_QUERY, SESSION_SETUP, tails_sql
from totes.tables import SourceTable


def begin_snapshot(conn: psycopg.Connection, statement_timeout: timedelta | None = None) -> None:
    """One read-only snapshot for every query of the run; each statement limited in time. The
    row reader joins it through :func:`export_snapshot` (:mod:`totes.extract.rows`)."""
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    try:
        for setup in SESSION_SETUP:
            conn.execute(setup)
        if statement_timeout is not None:
            milliseconds = int(statement_timeout.total_seconds() * 1000)
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(milliseconds),))
    except psycopg.Error as exc:
        raise SourceError(f"preparing the source session failed: {reason(exc)}") from None


def export_snapshot(conn: psycopg.Connection) -> str:
    """Export this transaction's snapshot for other sessions; valid while it stays open."""
    try:
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
    except psycopg.Error as exc:
        raise SourceError(f"exporting the source snapshot failed: {reason(exc)}") from None
    assert row is not None
    return snapshot_id(row[0])


def catalog(conn: psycopg.Connection, names: Sequence[str]) -> list[CatalogColumn]:
    try:
        rows = conn.execute(COLUMNS_QUERY, (list(names),)).fetchall()
    except psycopg.Error as exc:
        raise SourceError(f"reading the source catalog failed: {reason(exc)}") from None
    return [CatalogColumn(*row) for row in rows]


def tails(
    conn: psycopg.Connection,
    tables: Sequence[SourceTable],
    lowers: Sequence[datetime | None],
    upper: datetime,
) -> dict[str, Fingerprint]:
    if not tables:
        return {}
    query, params = tails_sql(tables, lowers, upper)
    try:
        rows = conn.execute(query, params).fetchall()
    except psycopg.Error as exc:
        raise SourceError(f"checking the source for changes failed: {reason(exc)}") from None
    return {
        name: Fingerprint(int(count), newest, int(key_sum or 0))
        for name, count, newest, key_sum in rows
    }

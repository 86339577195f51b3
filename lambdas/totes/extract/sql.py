"""SQL text of the extract (pure: no driver).

Table and known column names come from the allow-list in :mod:`totes.tables`. The only other
identifiers are columns that appeared in the source catalog (schema drift); they are quoted by
doubling embedded quotes, the standard identifier escape, and never carry values. Every value
(window bounds, table names used as labels) is a bound parameter: ``%s`` for psycopg, ``$n``
for the ADBC driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from totes.tables import SourceTable

# One query for the whole catalog check, run on every invocation. It reads pg_catalog directly
# (information_schema.columns costs tens of milliseconds) but returns the information_schema
# vocabulary: data_type as format_type names, enums as USER-DEFINED, numeric precision/scale.
COLUMNS_QUERY = (
    "SELECT c.relname::text, a.attname::text,"
    " CASE WHEN t.typtype = 'e' THEN 'USER-DEFINED' ELSE format_type(a.atttypid, NULL) END,"
    " t.typname::text,"
    " CASE WHEN t.typname = 'numeric' AND a.atttypmod >= 4"
    " THEN ((a.atttypmod - 4) >> 16) & 65535 END,"
    " CASE WHEN t.typname = 'numeric' AND a.atttypmod >= 4 THEN (a.atttypmod - 4) & 65535 END"
    " FROM pg_catalog.pg_attribute a"
    " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
    " JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
    " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')"
    " AND c.relname = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped"
    " ORDER BY c.relname, a.attnum"
)

# Drifted columns are read as text, whose form for dates follows the session's datestyle.
SESSION_SETUP = ("SET datestyle = 'ISO, YMD'", "SET client_encoding = 'UTF8'")


def quote_identifier(name: str) -> str:
    if "\x00" in name:
        raise ValueError("identifier contains a NUL byte")
    return '"' + name.replace('"', '""') + '"'


# The window bounds of a row read are bound values: set as transaction-local settings by a
# statement with parameters, then read by the row query with current_setting. The row query
# itself takes no parameter, because the ADBC driver runs a query with parameters as a prepared
# statement whose whole result libpq buffers (docs/performance.md), and streams one without.
WINDOW_LOWER = "totes.window_lower"
WINDOW_UPPER = "totes.window_upper"


def _where(lower: str | None, upper: str | None) -> str:
    clauses = [
        f'"last_updated" {operator} {bound}'
        for operator, bound in ((">=", lower), ("<", upper))
        if bound is not None
    ]
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


def _setting(name: str) -> str:
    return f"current_setting('{name}')::timestamp"


def window_settings_sql(*, lower: bool, upper: bool) -> str | None:
    """The statement that binds the window bounds a row query reads (``$1``, ``$2`` as text),
    or None when the read has no bound."""
    settings = [name for wanted, name in ((lower, WINDOW_LOWER), (upper, WINDOW_UPPER)) if wanted]
    if not settings:
        return None
    calls = [f"set_config('{name}', ${i}, true)" for i, name in enumerate(settings, start=1)]
    return f"SELECT {', '.join(calls)}"


def rows_sql(table: SourceTable, extras: Sequence[str], *, lower: bool, upper: bool) -> str:
    """The landing columns of ``table`` in key order, ``lower <= last_updated < upper`` where
    asked, the bounds read from :func:`window_settings_sql`'s settings. The content hash is
    computed afterwards, over the typed columns (:mod:`totes.contracts.content_hash`)."""
    columns = [c.select_expression for c in table.columns]
    columns += [f"{quote_identifier(name)}::text" for name in extras]
    where = _where(
        _setting(WINDOW_LOWER) if lower else None, _setting(WINDOW_UPPER) if upper else None
    )
    return f'SELECT {", ".join(columns)} FROM {table.quoted}{where} ORDER BY "{table.primary_key}"'


def tails_sql(
    tables: Sequence[SourceTable], lowers: Sequence[datetime | None], upper: datetime
) -> tuple[str, list[object]]:
    """One round trip that fingerprints what each table holds in its re-read window.

    Per table: label, row count, max(last_updated) and the sum of primary keys of the rows with
    ``lower <= last_updated < upper``. Comparing that with the fingerprint the last manifest
    recorded for the same lower bound tells whether a COPY could land anything at all."""
    parts: list[str] = []
    params: list[object] = []
    for table, lower in zip(tables, lowers, strict=True):
        parts.append(
            f'SELECT %s::text, count(*), max("last_updated"), sum("{table.primary_key}")::text'
            f" FROM {table.quoted}{_where(None if lower is None else '%s', '%s')}"
        )
        params.append(table.name)
        if lower is not None:
            params.append(lower)
        params.append(upper)
    return " UNION ALL ".join(parts), params

"""SQL text of the extract (pure: no driver).

Table and known column names come from the allow-list in :mod:`totes.tables`. The only other
identifiers are columns that appeared in the source catalog (schema drift); they are quoted by
doubling embedded quotes, the standard identifier escape, and never carry values. Every value
(window bounds, table names used as labels) is a bound ``%s`` parameter.
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

SESSION_SETUP = "SET datestyle = 'ISO, YMD'; SET client_encoding = 'UTF8'"


def quote_identifier(name: str) -> str:
    if "\x00" in name:
        raise ValueError("identifier contains a NUL byte")
    return '"' + name.replace('"', '""') + '"'


def _where(lower: bool, upper: bool) -> str:
    clauses = [
        clause
        for wanted, clause in (
            (lower, '"last_updated" >= %s'),
            (upper, '"last_updated" < %s'),
        )
        if wanted
    ]
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


def copy_rows_sql(table: SourceTable, extras: Sequence[str], *, lower: bool, upper: bool) -> str:
    """``COPY (SELECT ...) TO STDOUT`` in CSV: the landing columns in key order (the content hash
    is computed afterwards, over the parsed columns: :mod:`totes.contracts.content_hash`).

    CSV keeps NULL (unquoted empty) apart from the empty string (quoted), which the Arrow reader
    relies on; ``lower``/``upper`` add the bound-parameter window on ``last_updated``."""
    columns = [c.select_expression for c in table.columns]
    columns += [f"{quote_identifier(name)}::text" for name in extras]
    return (
        f"COPY (SELECT {', '.join(columns)} FROM {table.quoted}{_where(lower, upper)}"
        f' ORDER BY "{table.primary_key}") TO STDOUT (FORMAT csv)'
    )


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
            f" FROM {table.quoted}{_where(lower is not None, True)}"
        )
        params.append(table.name)
        if lower is not None:
            params.append(lower)
        params.append(upper)
    return " UNION ALL ".join(parts), params

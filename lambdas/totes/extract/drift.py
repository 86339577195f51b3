"""Schema drift: compare the source catalog with the allow-list (pure: no driver).

A column the source gained is landed as text (nothing the source shows is dropped) and reported
as a warning; a known column that vanished or changed to a type the landing type cannot hold
exactly fails the run, because landing it would silently change the lake's contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pyarrow as pa

from totes.contracts.ingestion import HASH_COLUMN, OP_COLUMN
from totes.errors import SchemaDriftError, SourceError
from totes.tables import MONEY, TIMESTAMP, Column, SourceTable

_INTEGER = {"smallint", "integer", "bigint"}
_TEXT = {"text", "character varying", "character"}


@dataclass(frozen=True)
class CatalogColumn:
    """One row of ``information_schema.columns``."""

    table: str
    name: str
    data_type: str
    udt_name: str
    numeric_precision: int | None = None
    numeric_scale: int | None = None


def _fits(column: Column, found: CatalogColumn) -> bool:
    kind = column.arrow_type
    if kind == pa.int64():
        return found.data_type in _INTEGER
    if kind == MONEY:
        return (
            found.data_type == "numeric"
            and found.numeric_scale == MONEY.scale
            and found.numeric_precision is not None
            and found.numeric_precision <= MONEY.precision
        )
    if kind == TIMESTAMP:
        # "with time zone" would make PostgreSQL convert values: the source clock must stay naive.
        return found.data_type == "timestamp without time zone"
    if kind == pa.bool_():
        return found.data_type == "boolean"
    if kind == pa.string():
        if column.select_sql is not None:  # enum labels are read as text
            return found.data_type == "USER-DEFINED" or found.data_type in _TEXT
        return found.data_type in _TEXT
    return False


def new_columns(
    tables: Mapping[str, SourceTable], catalog: Iterable[CatalogColumn]
) -> dict[str, list[str]]:
    """Columns per table that the source has and the allow-list does not, in catalog order.

    Raises :class:`SourceError` for a missing table and :class:`SchemaDriftError` for a missing
    or retyped known column."""
    found: dict[str, dict[str, CatalogColumn]] = {name: {} for name in tables}
    for entry in catalog:
        if entry.table in found:
            found[entry.table][entry.name] = entry
    extras: dict[str, list[str]] = {}
    for name, spec in tables.items():
        columns = found[name]
        if not columns:
            raise SourceError("source table is missing (checking the catalog)", table=name)
        for known_column in spec.columns:
            seen = columns.get(known_column.name)
            if seen is None:
                raise SchemaDriftError(
                    f"required column {known_column.name} is missing from the source", table=name
                )
            if not _fits(known_column, seen):
                raise SchemaDriftError(
                    f"column {known_column.name} changed type to {seen.data_type}"
                    f" ({seen.udt_name}); the lake expects {known_column.arrow_type}",
                    table=name,
                )
        known = set(spec.column_names)
        extras[name] = [c for c in columns if c not in known]
        for extra in extras[name]:
            if extra in (HASH_COLUMN, OP_COLUMN):
                raise SchemaDriftError(
                    f"new source column {extra} clashes with a lake bookkeeping column",
                    table=name,
                )
    return extras

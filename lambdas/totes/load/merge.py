"""SQL that merges one staged processed batch into the warehouse, built from the table specs.

Pure: strings only, no database driver. Every identifier comes from
``totes.contracts.warehouse`` and is checked against a strict pattern before it is quoted; values
never appear in the SQL.

The statements are set-based: the loader COPYs a batch into temporary staging tables, then runs
one ``INSERT ... SELECT ... ON CONFLICT`` per table.
"""

from __future__ import annotations

import re

from totes.contracts.warehouse import TABLES, WarehouseTable

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def ident(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not an allowed identifier")
    return f'"{name}"'


def _columns(names: list[str], prefix: str = "") -> str:
    return ", ".join(prefix + ident(n) for n in names)


def staging_table(table: WarehouseTable) -> str:
    return ident(f"stage_{table.name}")


def create_staging_sql(table: WarehouseTable) -> str:
    """A temporary table shaped like the processed file. Columns are nullable on purpose: a NULL
    where the warehouse needs a value is then rejected by the warehouse table itself, whose error
    names the table and column."""
    columns = ", ".join(f"{ident(c.name)} {c.sql_type}" for c in table.staged_columns)
    return f"CREATE TEMPORARY TABLE {staging_table(table)} ({columns}) ON COMMIT DROP"


def copy_sql(table: WarehouseTable) -> str:
    names = [c.name for c in table.staged_columns]
    return f"COPY {staging_table(table)} ({_columns(names)}) FROM STDIN (FORMAT csv)"


def date_merge_sql(table: WarehouseTable) -> str:
    """Dates are facts of the calendar: a known date never changes, so existing rows are kept."""
    names = table.column_names
    key = ident(table.key)
    return (
        f"INSERT INTO {ident(table.name)} ({_columns(names)}) "
        f"SELECT DISTINCT ON ({key}) {_columns(names)} FROM {staging_table(table)} "
        f"ORDER BY {key} "
        f"ON CONFLICT ({key}) DO NOTHING"
    )


def dimension_merge_sql(table: WarehouseTable) -> str:
    """Upsert, latest values win. Unchanged rows are not rewritten (no dead tuples, honest
    counts); a key staged twice is an error rather than an arbitrary pick."""
    names = table.column_names
    values = [n for n in names if n != table.key]
    target = ident(table.name)
    return (
        f"INSERT INTO {target} AS d ({_columns(names)}) "
        f"SELECT {_columns(names)} FROM {staging_table(table)} "
        f"ON CONFLICT ({ident(table.key)}) DO UPDATE SET "
        + ", ".join(f"{ident(n)} = EXCLUDED.{ident(n)}" for n in values)
        + f" WHERE ({_columns(values, 'd.')}) IS DISTINCT FROM ({_columns(values, 'EXCLUDED.')})"
    )


def fact_merge_sql(table: WarehouseTable) -> str:
    """Append the versions that differ from the latest one recorded for their id.

    A version is compared with the latest of its id only, not with all history, so a row that
    returns to an earlier value (A -> B -> A) is recorded again. Record ids are assigned here,
    continuing from the highest one, in capture order (sequence, then capture_seq). Numbering
    only the new versions, inside the batch's transaction, keeps ids free of gaps: a retried or
    replayed batch yields exactly the ids of a clean run, which a sequence (advanced even by
    rolled-back or skipped inserts) would not. The loader holds the warehouse lock, so no other
    writer can take the same ids or change the latest versions meanwhile.
    """
    assert table.record_id is not None
    names = [c.name for c in table.staged_columns]
    version = [ident(n) for n in table.version_key]
    key = ident(table.key)
    record_id = ident(table.record_id)
    target = ident(table.name)
    match = " AND ".join(f"l.{v} = s.{v}" for v in version)
    return (
        f"WITH incoming AS ("
        f"SELECT DISTINCT ON ({', '.join(version)}) * FROM {staging_table(table)} "
        f"ORDER BY {', '.join(version)}, {ident('sequence')}, {ident('capture_seq')}"
        f"), latest AS ("
        f"SELECT DISTINCT ON (f.{key}) {_columns(list(table.version_key), 'f.')} "
        f"FROM {target} AS f WHERE f.{key} IN (SELECT {key} FROM incoming) "
        f"ORDER BY f.{key}, f.{record_id} DESC"
        f"), fresh AS ("
        f"SELECT s.* FROM incoming AS s "
        f"WHERE NOT EXISTS (SELECT 1 FROM latest AS l WHERE {match})"
        f"), top AS (SELECT coalesce(max({record_id}), 0) AS id FROM {target}) "
        f"INSERT INTO {target} ({record_id}, {_columns(names)}) "
        f"SELECT top.id + row_number() OVER "
        f"(ORDER BY s.{ident('sequence')}, s.{ident('capture_seq')}), {_columns(names, 's.')} "
        f"FROM fresh AS s CROSS JOIN top"
    )


def is_empty_sql(table: WarehouseTable) -> str:
    return f"SELECT NOT EXISTS (SELECT 1 FROM {ident(table.name)})"


# The fact's foreign keys as the catalog holds them: name and (single) referencing column.
FOREIGN_KEYS_SQL = (
    "SELECT c.conname::text, a.attname::text FROM pg_catalog.pg_constraint c"
    " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
    " WHERE c.conrelid = %s::regclass AND c.contype = 'f' ORDER BY c.conname"
)


def drop_foreign_key_sql(table: WarehouseTable, constraint: str) -> str:
    return f"ALTER TABLE {ident(table.name)} DROP CONSTRAINT {ident(constraint)}"


def add_foreign_key_sql(table: WarehouseTable, constraint: str, column: str) -> str:
    """The foreign key the contract declares for ``column``, under its catalog name. Adding it
    validates every row with one join, instead of one trigger call per inserted row."""
    referenced = TABLES[table.references[column]]
    return (
        f"ALTER TABLE {ident(table.name)} ADD CONSTRAINT {ident(constraint)} "
        f"FOREIGN KEY ({ident(column)}) REFERENCES {ident(referenced.name)} "
        f"({ident(referenced.key)})"
    )


def sync_sequence_sql(table: WarehouseTable) -> str:
    """Keep the serial's sequence past the highest id, for anyone inserting with the default."""
    assert table.record_id is not None
    record_id = ident(table.record_id)
    ident(table.name)  # validated: both names go into text arguments below
    return (
        f"SELECT setval(pg_get_serial_sequence('{table.name}', '{table.record_id}'), "
        f"greatest(max({record_id}), 1), max({record_id}) IS NOT NULL) "
        f"FROM {ident(table.name)}"
    )

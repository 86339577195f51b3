from __future__ import annotations

import threading

import psycopg
import pytest

from totes.contracts.warehouse import TABLES
from totes.errors import WarehouseError
from totes.load.migrations import MIGRATIONS_TABLE, available, migrate
from totes.settings import DbSettings

REFERENCE_COLUMNS = {
    "fact_sales_order": [
        ("sales_record_id", "integer"),
        ("sales_order_id", "integer"),
        ("created_date", "date"),
        ("created_time", "time without time zone"),
        ("last_updated_date", "date"),
        ("last_updated_time", "time without time zone"),
        ("sales_staff_id", "integer"),
        ("counterparty_id", "integer"),
        ("units_sold", "integer"),
        ("unit_price", "numeric"),
        ("currency_id", "integer"),
        ("design_id", "integer"),
        ("agreed_payment_date", "date"),
        ("agreed_delivery_date", "date"),
        ("agreed_delivery_location_id", "integer"),
    ],
    "dim_date": [
        ("date_id", "date"),
        ("year", "integer"),
        ("month", "integer"),
        ("day", "integer"),
        ("day_of_week", "integer"),
        ("day_name", "character varying"),
        ("month_name", "character varying"),
        ("quarter", "integer"),
    ],
}


def _columns(conn: psycopg.Connection, table: str) -> list[tuple[str, str]]:
    return [
        (str(name), str(kind))
        for name, kind in conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
    ]


def test_migrate_creates_the_course_tables_with_their_original_columns(
    empty_database: DbSettings,
) -> None:
    applied = migrate(empty_database)
    assert applied == [m.version for m in available()]
    with psycopg.connect(**empty_database.conninfo()) as conn:
        for table, expected in REFERENCE_COLUMNS.items():
            # the course columns come first and unchanged; facts append the version metadata
            assert _columns(conn, table)[: len(expected)] == expected
        assert [c for c, _ in _columns(conn, "fact_payment")][-5:] == [
            "content_hash",
            "batch_id",
            "sequence",
            "capture_seq",
            "is_deleted",
        ]
        for name in TABLES:
            assert _columns(conn, name), name
        for view in ("fact_sales_order_current", "fact_purchase_order_current"):
            assert _columns(conn, view)
        assert _columns(conn, "fact_payment_current")


def test_migrate_is_idempotent_and_recorded(empty_database: DbSettings) -> None:
    migrate(empty_database)
    assert migrate(empty_database) == []
    with psycopg.connect(**empty_database.conninfo()) as conn:
        versions = [r[0] for r in conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE}")]
    assert versions == [m.version for m in available()]


def test_concurrent_migrations_apply_each_file_once(empty_database: DbSettings) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(empty_database))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(len(r) for r in results) == [0, 0, 0, len(available())]


def test_an_edited_applied_migration_is_refused(empty_database: DbSettings) -> None:
    migrate(empty_database)
    with psycopg.connect(**empty_database.conninfo()) as conn:
        conn.execute(f"UPDATE {MIGRATIONS_TABLE} SET checksum = 'x' WHERE version = '0001'")
    with pytest.raises(WarehouseError, match="changed after it was applied"):
        migrate(empty_database)


def test_unreachable_warehouse_is_a_warehouse_error(empty_database: DbSettings) -> None:
    gone = DbSettings(empty_database.host, 1, "nobody", "", "nowhere")
    with pytest.raises(WarehouseError, match="cannot connect to the warehouse"):
        migrate(gone)


_SQL_TYPES = {
    "integer": ("integer", None, None),
    "varchar": ("character varying", None, None),
    "date": ("date", None, None),
    "time": ("time without time zone", None, None),
    "numeric(10,2)": ("numeric", 10, 2),
    "boolean": ("boolean", None, None),
    "text": ("text", None, None),
    "bigint": ("bigint", None, None),
}


def test_the_migrated_schema_is_what_the_warehouse_contract_declares(
    empty_database: DbSettings,
) -> None:
    """The migration SQL and the table specs are two descriptions of one schema: every column,
    type, nullability, key and reference must agree, or a processed batch would not load."""
    migrate(empty_database)
    with psycopg.connect(**empty_database.conninfo()) as conn:
        for name, spec in TABLES.items():
            found = conn.execute(
                "SELECT column_name, data_type, numeric_precision, numeric_scale, is_nullable"
                " FROM information_schema.columns WHERE table_name = %s"
                " ORDER BY ordinal_position",
                (name,),
            ).fetchall()
            declared = [
                (c.name, *_SQL_TYPES[c.sql_type], "YES" if c.nullable else "NO")
                for c in spec.staged_columns
            ]
            if spec.record_id:
                declared.insert(0, (spec.record_id, "integer", None, None, "NO"))
            # Precision and scale are declared for numeric only; PostgreSQL reports them for
            # every number type.
            normalised = [
                (column, kind, *((precision, scale) if kind == "numeric" else (None, None)), null)
                for column, kind, precision, scale, null in found
            ]
            # By name: a column added by a later migration sits physically last, after the
            # metadata, wherever the spec declares it (loads and reads name their columns).
            assert {c[0]: c[1:] for c in normalised} == {c[0]: c[1:] for c in declared}, name
            primary = conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a"
                " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
                " WHERE i.indrelid = %s::regclass AND i.indisprimary",
                (name,),
            ).fetchall()
            assert [r[0] for r in primary] == [spec.record_id or spec.key], name
            foreign = conn.execute(
                "SELECT a.attname, c.confrelid::regclass::text FROM pg_constraint c"
                " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
                " WHERE c.conrelid = %s::regclass AND c.contype = 'f'",
                (name,),
            ).fetchall()
            assert dict(foreign) == spec.references, name

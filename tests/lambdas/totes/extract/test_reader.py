"""The psycopg side of the extract's reads: snapshot, change fingerprints and catalog."""

from __future__ import annotations

from datetime import datetime

import psycopg
import pytest

from totes.contracts.ingestion import Fingerprint
from totes.extract import reader
from totes.settings import DbSettings
from totes.tables import LOAD_ORDER, SOURCE_TABLES

T0 = datetime(2024, 1, 2, 9, 30, 0, 100000)


@pytest.fixture
def addresses(source_empty: DbSettings) -> DbSettings:
    """Six addresses, the i-th last updated at minute i."""
    with psycopg.connect(**source_empty.conninfo(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO address (address_id, address_line_1, city, postal_code, country, phone,"
            " created_at, last_updated)"
            " SELECT i, 'a', 'c', 'p', 'k', 'ph', %s, %s + make_interval(mins => i - 30)"
            " FROM generate_series(1, 6) i",
            (T0, T0.replace(minute=30)),
        )
    return source_empty


def test_tails_fingerprint_each_table_in_one_query(addresses: DbSettings) -> None:
    tables = [SOURCE_TABLES[name] for name in LOAD_ORDER]
    with psycopg.connect(**addresses.conninfo()) as conn:
        reader.begin_snapshot(conn)
        found = reader.tails(
            conn, tables, [T0.replace(minute=3)] + [None] * 10, T0.replace(minute=6)
        )
        columns = reader.catalog(conn, LOAD_ORDER)
    assert found["address"] == Fingerprint(3, T0.replace(minute=5), 3 + 4 + 5)
    assert found["payment"] == Fingerprint(0, None, 0)
    assert {c.table for c in columns} == set(LOAD_ORDER)


def test_catalog_speaks_the_information_schema_vocabulary(source_empty: DbSettings) -> None:
    with psycopg.connect(**source_empty.conninfo(), autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE currency ADD COLUMN rate numeric(12,3), ADD COLUMN code2 varchar(3),"
            " ADD COLUMN flag char(1), ADD COLUMN big bigint"
        )
    with psycopg.connect(**source_empty.conninfo()) as conn:
        reader.begin_snapshot(conn)
        ours = {(c.table, c.name): c for c in reader.catalog(conn, LOAD_ORDER)}
        standard = conn.execute(
            "SELECT table_name, column_name, data_type, udt_name, numeric_precision,"
            " numeric_scale FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ANY(%s)",
            (list(LOAD_ORDER),),
        ).fetchall()
    assert len(ours) == len(standard)
    for table, column, data_type, udt_name, precision, scale in standard:
        found = ours[(table, column)]
        assert (found.data_type, found.udt_name) == (data_type, udt_name)
        if data_type == "numeric":
            assert (found.numeric_precision, found.numeric_scale) == (precision, scale)

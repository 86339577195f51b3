from __future__ import annotations

from typing import Any

import psycopg
import pyarrow as pa
import pytest

from totes.contracts.warehouse import TABLES
from totes.load import merge
from totes.load.loader import arrow_to_csv
from totes.settings import DbSettings

STAFF = TABLES["dim_staff"]
SALES = TABLES["fact_sales_order"]


def _stage(conn: psycopg.Connection, name: str, rows: list[dict[str, Any]]) -> None:
    spec = TABLES[name]
    data = arrow_to_csv(spec, pa.Table.from_pylist(rows, schema=spec.arrow_schema), key="test")
    conn.execute(merge.create_staging_sql(spec))
    with conn.cursor().copy(merge.copy_sql(spec)) as copy:
        copy.write(data)


def _staff(staff_id: int, location: str) -> dict[str, Any]:
    return {
        "staff_id": staff_id,
        "first_name": "A",
        "last_name": "B",
        "department_name": "Sales",
        "location": location,
        "email_address": "a.b@terrifictotes.com",
    }


def test_identifiers_outside_the_pattern_are_refused() -> None:
    assert merge.ident("dim_staff") == '"dim_staff"'
    for bad in ('dim"staff', "DimStaff", "dim staff; drop", ""):
        with pytest.raises(ValueError, match="not an allowed identifier"):
            merge.ident(bad)


def test_dimension_merge_inserts_updates_and_leaves_unchanged_rows_alone(
    warehouse: DbSettings,
) -> None:
    with psycopg.connect(**warehouse.conninfo()) as conn:
        conn.execute(
            "INSERT INTO dim_staff VALUES (1, 'A', 'B', 'Sales', 'Leeds', 'x'), "
            "(2, 'A', 'B', 'Sales', 'Leds', 'a.b@terrifictotes.com')"
        )
        before = conn.execute("SELECT xmin::text FROM dim_staff WHERE staff_id = 2").fetchone()
        conn.commit()
        _stage(conn, "dim_staff", [_staff(1, "Manchester"), _staff(2, "Leds"), _staff(3, "Leeds")])
        cur = conn.execute(merge.dimension_merge_sql(STAFF))
        assert cur.rowcount == 2  # 1 changed, 3 new; 2 identical and not rewritten
        rows = conn.execute(
            "SELECT staff_id, location, email_address FROM dim_staff ORDER BY 1"
        ).fetchall()
        after = conn.execute("SELECT xmin::text FROM dim_staff WHERE staff_id = 2").fetchone()
    assert rows == [
        (1, "Manchester", "a.b@terrifictotes.com"),
        (2, "Leds", "a.b@terrifictotes.com"),
        (3, "Leeds", "a.b@terrifictotes.com"),
    ]
    assert before == after


def test_date_merge_keeps_known_dates(warehouse: DbSettings, helpers: Any) -> None:
    day = helpers.calendar_row(helpers.day)
    with psycopg.connect(**warehouse.conninfo()) as conn:
        _stage(conn, "dim_date", [day, day, dict(day, date_id=helpers.day.replace(day=2))])
        assert conn.execute(merge.date_merge_sql(TABLES["dim_date"])).rowcount == 2
        conn.execute("DROP TABLE stage_dim_date")
        _stage(conn, "dim_date", [dict(day, day_name="changed")])
        assert conn.execute(merge.date_merge_sql(TABLES["dim_date"])).rowcount == 0
        assert conn.execute(
            "SELECT count(*) FROM dim_date WHERE day_name = 'changed'"
        ).fetchone() == (0,)


def test_fact_merge_appends_new_versions_numbered_in_capture_order(
    warehouse: DbSettings, helpers: Any
) -> None:
    dims = helpers.dimension_rows()

    def version(order_id: int, capture: int, units: int = 1, sequence: int = 1) -> dict[str, Any]:
        row = helpers.sale(order_id, units=units)
        row.update(
            content_hash=f"h{order_id}-{units}",
            batch_id="b",
            sequence=sequence,
            capture_seq=capture,
            is_deleted=False,
        )
        return row

    with psycopg.connect(**warehouse.conninfo()) as conn:
        for name in (
            "dim_date",
            "dim_staff",
            "dim_location",
            "dim_design",
            "dim_currency",
            "dim_counterparty",
        ):
            _stage(conn, name, dims[name])
            conn.execute(
                merge.date_merge_sql(TABLES[name])
                if name == "dim_date"
                else merge.dimension_merge_sql(TABLES[name])
            )
        _stage(conn, "fact_sales_order", [version(2, 1), version(1, 0), version(1, 5)])
        assert conn.execute(merge.fact_merge_sql(SALES)).rowcount == 2  # duplicate dropped
        conn.execute("DROP TABLE stage_fact_sales_order")
        # the next batch repeats order 2's version and brings a new version of order 1
        _stage(
            conn,
            "fact_sales_order",
            [version(1, 0, units=9, sequence=2), version(2, 1, sequence=2)],
        )
        assert conn.execute(merge.fact_merge_sql(SALES)).rowcount == 1
        rows = conn.execute(
            "SELECT sales_record_id, sales_order_id, units_sold, sequence "
            "FROM fact_sales_order ORDER BY 1"
        ).fetchall()
        conn.execute(merge.sync_sequence_sql(SALES))
        serial = conn.execute(
            "SELECT nextval(pg_get_serial_sequence('fact_sales_order', 'sales_record_id'))"
        ).fetchone()
    assert rows == [(1, 1, 1, 1), (2, 2, 1, 1), (3, 1, 9, 2)]
    assert serial == (4,)

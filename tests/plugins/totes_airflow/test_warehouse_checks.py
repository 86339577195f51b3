"""The warehouse checks as the DAG runs them: the provider's table-check operator over a real
PostgreSQL warehouse migrated with the product's migrations, passing on a sound warehouse and
failing, by name, on each broken invariant."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import psycopg
import pytest

from totes.contracts.warehouse import DIM_DATE, DIMENSIONS, FACTS
from totes.load.migrations import migrate
from totes.settings import DbSettings
from totes_airflow.warehouse_checks import (
    CHECK_GROUPS,
    ONE_ROW,
    ident,
)
from totes_airflow.warehouse_checks import (
    DIMENSIONS as CHECKED_DIMENSIONS,
)
from totes_airflow.warehouse_checks import (
    FACTS as CHECKED_FACTS,
)

pytestmark = pytest.mark.xdist_group("warehouse_checks")


def test_checked_tables_are_the_contracts_tables() -> None:
    """The check declarations repeat the contracts (MWAA has no pyarrow); they must agree."""
    assert [(d.name, d.key) for d in CHECKED_DIMENSIONS] == [
        (t.name, t.key) for t in (DIM_DATE, *DIMENSIONS)
    ]
    assert [(f.name, f.key, f.record_id, f.columns, dict(f.references)) for f in CHECKED_FACTS] == [
        (t.name, t.key, t.record_id, tuple(t.column_names), t.references) for t in FACTS
    ]
    assert [f.current_view for f in CHECKED_FACTS] == [t.current_view for t in FACTS]


def test_identifiers_outside_the_allow_list_pattern_are_refused() -> None:
    assert ident("dim_staff") == '"dim_staff"'
    for bad in ('dim"; DROP TABLE x; --', "Dim_Staff", "1abc", "a b", ""):
        with pytest.raises(ValueError, match="not an allowed warehouse identifier"):
            ident(bad)


def test_check_names_are_short_unique_sql_names() -> None:
    names = [name for checks in CHECK_GROUPS.values() for name in checks]
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", name)
        assert len(name) <= 63, name  # PostgreSQL truncates longer aliases
    fact_references = sum(len(f.references) for f in CHECKED_FACTS)
    assert len(CHECK_GROUPS["fact_references"]) == fact_references
    assert len(CHECK_GROUPS["dimension_keys"]) == 2 * len(CHECKED_DIMENSIONS)


CONN_ID = "checks_test_warehouse"


@pytest.fixture
def warehouse(
    new_database: Any, monkeypatch: pytest.MonkeyPatch, airflow_metadata: DbSettings
) -> DbSettings:
    db: DbSettings = new_database(f"checks_{uuid.uuid4().hex[:6]}")
    migrate(db)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": db.host,
                "port": db.port,
                "login": db.user,
                "password": db.password,
                "schema": db.database,
            }
        ),
    )
    return db


def _sql(db: DbSettings, *statements: str) -> None:
    with psycopg.connect(**db.conninfo()) as conn:
        for statement in statements:
            conn.execute(statement)


DIMENSION_ROWS = (
    "INSERT INTO dim_date VALUES ('2026-01-01', 2026, 1, 1, 4, 'Thursday', 'January', 1)",
    "INSERT INTO dim_staff VALUES (1, 'Ada', 'L', 'Sales', 'Leeds', 'a@example.com')",
    "INSERT INTO dim_location VALUES (1, '1 Road', NULL, NULL, 'Leeds', 'LS1', 'UK', '0')",
    "INSERT INTO dim_design VALUES (1, 'Tote', '/d', 'tote.json')",
    "INSERT INTO dim_currency VALUES (1, 'GBP', 'Pound sterling')",
    "INSERT INTO dim_counterparty VALUES (1, 'Acme', '1 Road', NULL, NULL, 'Leeds', 'LS1', "
    "'UK', '0')",
    "INSERT INTO dim_payment_type VALUES (1, 'SALES_RECEIPT')",
    "INSERT INTO dim_transaction VALUES (1, 'SALE', 1, NULL)",
)


def _sales_order(order_id: int = 1, *, units: int = 5, staff: int = 1) -> str:
    return (
        "INSERT INTO fact_sales_order (sales_order_id, created_date, created_time, "
        "last_updated_date, last_updated_time, sales_staff_id, counterparty_id, units_sold, "
        "unit_price, currency_id, design_id, agreed_payment_date, agreed_delivery_date, "
        "agreed_delivery_location_id, content_hash, batch_id, sequence, capture_seq) VALUES "
        f"({order_id}, '2026-01-01', '10:00', '2026-01-01', '10:00', {staff}, 1, {units}, 2.50, "
        f"1, 1, '2026-01-01', '2026-01-01', 1, 'h{units}', 'b1', 1, {order_id})"
    )


def _run_checks(group: str) -> None:
    from totes_airflow.operators import WarehouseCheckOperator

    operator = WarehouseCheckOperator(
        task_id=f"check_{group}", conn_id=CONN_ID, table=ONE_ROW, checks=CHECK_GROUPS[group]
    )
    operator.execute({})


def _failure(group: str) -> str:
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as failed:
        _run_checks(group)
    return str(failed.value)


def test_every_check_passes_on_an_empty_and_on_a_sound_warehouse(warehouse: DbSettings) -> None:
    for group in CHECK_GROUPS:
        _run_checks(group)
    _sql(warehouse, *DIMENSION_ROWS, _sales_order(1), _sales_order(1, units=7), _sales_order(2))
    for group in CHECK_GROUPS:
        _run_checks(group)


def test_a_fact_version_loaded_twice_fails_and_is_named(warehouse: DbSettings) -> None:
    _sql(warehouse, *DIMENSION_ROWS, _sales_order(1), _sales_order(1))
    message = _failure("fact_versions")
    assert "fact_sales_order_no_version_twice" in message
    assert "fact_payment_no_version_twice" not in message
    # A version coming back after another one is a real change, not a repeat.
    _sql(warehouse, "DELETE FROM fact_sales_order WHERE sales_record_id = 2")
    _sql(warehouse, _sales_order(1, units=7), _sales_order(1))
    _run_checks("fact_versions")


def test_an_unresolved_fact_reference_fails_and_is_named(warehouse: DbSettings) -> None:
    _sql(
        warehouse,
        *DIMENSION_ROWS,
        # As the load leaves a fact table between filling it and re-adding its foreign keys.
        "ALTER TABLE fact_sales_order DROP CONSTRAINT fact_sales_order_sales_staff_id_fkey",
        _sales_order(1, staff=99),
    )
    message = _failure("fact_references")
    assert "fact_sales_order_sales_staff_id_resolves" in message
    assert "counterparty" not in message


def test_a_missing_or_repeated_dimension_key_fails_and_is_named(warehouse: DbSettings) -> None:
    _sql(
        warehouse,
        *DIMENSION_ROWS,
        "ALTER TABLE dim_design DROP CONSTRAINT dim_design_pkey CASCADE",
        "ALTER TABLE dim_design ALTER COLUMN design_id DROP NOT NULL",
        "INSERT INTO dim_design VALUES (1, 'Tote again', '/d', 'tote.json')",
        "INSERT INTO dim_design VALUES (NULL, 'No key', '/d', 'x.json')",
    )
    message = _failure("dimension_keys")
    assert "dim_design_key_unique" in message
    assert "dim_design_key_not_null" in message
    assert "dim_staff" not in message


def test_two_current_rows_for_one_id_fail_and_are_named(warehouse: DbSettings) -> None:
    _sql(
        warehouse,
        *DIMENSION_ROWS,
        _sales_order(1),
        _sales_order(1, units=7),
        # A view redefined without its one-row-per-id rule.
        "CREATE OR REPLACE VIEW fact_sales_order_current AS SELECT * FROM fact_sales_order",
    )
    message = _failure("current_views")
    assert "fact_sales_order_current_one_per_key" in message
    assert "fact_payment_current" not in message

"""Fixtures for warehouse tests: migrated databases cloned from a template, and a writer of
processed batches that follows the lake contract, so the loader is tested without the other
stages."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from totes.batches import dated_key, manifest_key, new_batch_id
from totes.contracts.warehouse import FACT_METADATA, TABLES
from totes.lake import Lake, parquet_bytes, put_json
from totes.load.migrations import migrate
from totes.settings import DbSettings


def _clone(admin: DbSettings, template: str, name: str) -> DbSettings:
    with psycopg.connect(**admin.conninfo(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return DbSettings(admin.host, admin.port, admin.user, admin.password, name)


@pytest.fixture(scope="session")
def warehouse_template(pg_admin: DbSettings) -> str:
    """A migrated warehouse to copy: CREATE DATABASE ... TEMPLATE is much faster than
    migrating every test's database."""
    name = f"totes_wh_template_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**pg_admin.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    migrate(DbSettings(pg_admin.host, pg_admin.port, pg_admin.user, pg_admin.password, name))
    return name


@pytest.fixture
def new_warehouse(pg_admin: DbSettings, warehouse_template: str) -> Callable[[], DbSettings]:
    def make() -> DbSettings:
        return _clone(pg_admin, warehouse_template, f"totes_wh_{uuid.uuid4().hex[:12]}")

    return make


@pytest.fixture
def warehouse(new_warehouse: Callable[[], DbSettings]) -> DbSettings:
    """A freshly migrated, empty warehouse."""
    return new_warehouse()


@pytest.fixture
def empty_database(pg_admin: DbSettings) -> DbSettings:
    name = f"totes_empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(**pg_admin.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return DbSettings(pg_admin.host, pg_admin.port, pg_admin.user, pg_admin.password, name)


Rows = Sequence[Mapping[str, Any]]


def calendar_row(day: date) -> dict[str, Any]:
    return {
        "date_id": day,
        "year": day.year,
        "month": day.month,
        "day": day.day,
        "day_of_week": day.isoweekday(),
        "day_name": day.strftime("%A"),
        "month_name": day.strftime("%B"),
        "quarter": (day.month - 1) // 3 + 1,
    }


class ProcessedWriter:
    """Commits processed batches to a lake the way the transform does: data, then manifest."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self.sequence = 0
        self.clock = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def commit(self, tables: Mapping[str, Rows]) -> str:
        self.sequence += 1
        self.clock += timedelta(minutes=20)
        batch_id = new_batch_id(self.clock)
        entries: dict[str, dict[str, Any]] = {}
        for name, rows in tables.items():
            spec = TABLES[name]
            full = [dict(r) for r in rows]
            if spec.is_fact:
                for position, row in enumerate(full):
                    business = {c: row[c] for c in spec.column_names}
                    row.setdefault(
                        "content_hash",
                        hashlib.md5(  # noqa: S324 - a fingerprint, not security
                            json.dumps(business, default=str, sort_keys=True).encode()
                        ).hexdigest(),
                    )
                    row.setdefault("batch_id", batch_id)
                    row.setdefault("sequence", self.sequence)
                    row.setdefault("capture_seq", position)
                    row.setdefault("is_deleted", False)
            table = pa.Table.from_pylist(full, schema=spec.arrow_schema)
            key = dated_key(name, batch_id) if full else None
            if key:
                self.lake.put(key, parquet_bytes(table))
            entries[name] = {"key": key, "rows": len(full)}
        put_json(
            self.lake,
            manifest_key(self.sequence),
            {
                "format": 1,
                "kind": "processed",
                "batch_id": batch_id,
                "sequence": self.sequence,
                "source_manifest": None,
                "tables": entries,
                "quarantined": {},
                "quarantine_keys": [],
                "state": {},
            },
        )
        return batch_id


@pytest.fixture
def processed_writer(local_lake: Lake) -> ProcessedWriter:
    return ProcessedWriter(local_lake)


DAY = date(2024, 2, 1)


def dimension_rows() -> dict[str, list[dict[str, Any]]]:
    """A small consistent set of dimensions every fact below can reference."""
    return {
        "dim_date": [calendar_row(DAY + timedelta(days=n)) for n in range(10)],
        "dim_staff": [
            {
                "staff_id": i,
                "first_name": f"First{i}",
                "last_name": f"Last{i}",
                "department_name": "Sales",
                "location": "Leds",
                "email_address": f"first{i}.last{i}@terrifictotes.com",
            }
            for i in (1, 2)
        ],
        "dim_location": [
            {
                "location_id": i,
                "address_line_1": f"{i} High Street",
                "address_line_2": None,
                "district": "" if i == 2 else None,
                "city": "Leeds",
                "postal_code": "LS1",
                "country": "UK",
                "phone": "0113",
            }
            for i in (1, 2)
        ],
        "dim_design": [
            {
                "design_id": i,
                "design_name": "Wooden",
                "file_location": "/usr",
                "file_name": f"wooden-{i}.json",
            }
            for i in (1, 2)
        ],
        "dim_currency": [
            {"currency_id": 1, "currency_code": "GBP", "currency_name": "Pound Sterling"}
        ],
        "dim_counterparty": [
            {
                "counterparty_id": 1,
                "counterparty_legal_name": 'Acme, "Ltd"',
                "counterparty_legal_address_line_1": "1 High Street",
                "counterparty_legal_address_line_2": None,
                "counterparty_legal_district": None,
                "counterparty_legal_city": "Leeds",
                "counterparty_legal_postal_code": "LS1",
                "counterparty_legal_country": "UK",
                "counterparty_legal_phone_number": "0113",
            }
        ],
        "dim_payment_type": [{"payment_type_id": 1, "payment_type_name": "SALES_RECEIPT"}],
        "dim_transaction": [
            {
                "transaction_id": 1,
                "transaction_type": "SALE",
                "sales_order_id": 1,
                "purchase_order_id": None,
            }
        ],
    }


def sale(order_id: int, *, units: int = 100, minute: int = 0, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "sales_order_id": order_id,
        "created_date": DAY,
        "created_time": time(9, 0, 10, 123000),
        "last_updated_date": DAY,
        "last_updated_time": time(9, minute, 10, 123000),
        "sales_staff_id": 1,
        "counterparty_id": 1,
        "units_sold": units,
        "unit_price": Decimal("2.50"),
        "currency_id": 1,
        "design_id": 1,
        "agreed_payment_date": DAY + timedelta(days=2),
        "agreed_delivery_date": DAY + timedelta(days=3),
        "agreed_delivery_location_id": 1,
    }
    row.update(changes)
    return row


def payment(payment_id: int, *, paid: bool = False, minute: int = 0) -> dict[str, Any]:
    return {
        "payment_id": payment_id,
        "created_date": DAY,
        "created_time": time(9, 0, 10, 123000),
        "last_updated_date": DAY + timedelta(days=2 if paid else 0),
        "last_updated_time": time(7, 55, 10, 0) if paid else time(9, minute, 10, 123000),
        "transaction_id": 1,
        "counterparty_id": 1,
        "payment_amount": Decimal("250.00"),
        "currency_id": 1,
        "payment_type_id": 1,
        "paid": paid,
        "payment_date": DAY + timedelta(days=2),
    }


def purchase(order_id: int) -> dict[str, Any]:
    return {
        "purchase_order_id": order_id,
        "created_date": DAY,
        "created_time": time(9, 0, 10, 0),
        "last_updated_date": DAY,
        "last_updated_time": time(9, 0, 10, 0),
        "staff_id": 2,
        "counterparty_id": 1,
        "item_code": "ABC1234",
        "item_quantity": 5,
        "item_unit_price": Decimal("10.01"),
        "currency_id": 1,
        "agreed_delivery_date": DAY + timedelta(days=1),
        "agreed_payment_date": DAY + timedelta(days=1),
        "agreed_delivery_location_id": 2,
    }


def dump_warehouse(db: DbSettings) -> dict[str, list[tuple[Any, ...]]]:
    """Every warehouse table, row for row, in a stable order (the ledger's load time aside)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(**db.conninfo()) as conn:
        for name, spec in TABLES.items():
            order = spec.record_id or spec.key
            rows = conn.execute(
                sql.SQL("SELECT * FROM {} ORDER BY {}").format(
                    sql.Identifier(name), sql.Identifier(order)
                )
            ).fetchall()
            out[name] = rows
        out["ledger"] = conn.execute(
            "SELECT batch_id, sequence, manifest_key, rows, fact_versions_added "
            "FROM warehouse_batch_ledger ORDER BY sequence"
        ).fetchall()
    return out


@pytest.fixture
def helpers() -> Any:
    """The row builders above, for tests (conftest modules cannot be imported directly)."""

    class _Helpers:
        dimension_rows = staticmethod(dimension_rows)
        sale = staticmethod(sale)
        payment = staticmethod(payment)
        purchase = staticmethod(purchase)
        calendar_row = staticmethod(calendar_row)
        dump_warehouse = staticmethod(dump_warehouse)
        fact_metadata = FACT_METADATA
        day = DAY

    return _Helpers

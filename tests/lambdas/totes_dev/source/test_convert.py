"""Strict conversion of loose snapshot columns (pure: no database)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from totes.tables import source_table
from totes_dev.errors import SnapshotLoadError
from totes_dev.source.convert import strict_table


def _row(index: int) -> str:
    return f"row {index + 1}"


def _transactions(**overrides: pa.Array) -> pa.Table:
    columns = {
        "transaction_id": pa.array(["1", "2", "3"]),
        "transaction_type": pa.array(["SALE", "PURCHASE", "SALE"]),
        "sales_order_id": pa.array([1.0, float("nan"), 3.0]),
        "purchase_order_id": pa.array([None, "2.0", None], pa.string()),
        "created_at": pa.array(["2024-01-02 10:00:01.2", "2024-01-02 10:00:01", None]),
        "last_updated": pa.array(["2024-01-02 10:00:01.25"] * 3),
    }
    columns.update(overrides)
    return pa.table(columns)


def test_loose_ids_and_timestamps_become_exact() -> None:
    raw = _transactions(created_at=pa.array(["2024-01-02 10:00:01.2"] * 3))
    out = strict_table(raw, source_table("transaction"), origin="t.parquet", locate=_row)
    assert out.schema == source_table("transaction").arrow_schema
    assert out.column("transaction_id").to_pylist() == [1, 2, 3]
    assert out.column("sales_order_id").to_pylist() == [1, None, 3]
    assert out.column("purchase_order_id").to_pylist() == [None, 2, None]
    assert out.column("last_updated")[0].as_py() == datetime(2024, 1, 2, 10, 0, 1, 250000)


def test_null_in_a_not_null_column_names_the_row() -> None:
    with pytest.raises(SnapshotLoadError) as caught:
        strict_table(_transactions(), source_table("transaction"), origin="t.parquet", locate=_row)
    assert str(caught.value) == (
        "[source-load table=transaction key=3] t.parquet: row 3, column created_at: "
        "None is NULL but the column is NOT NULL"
    )


def test_money_is_rounded_to_cents_and_overflow_is_refused() -> None:
    sales = source_table("sales_order")
    base = {c.name: pa.array(["1", "2"]) for c in sales.columns if c.arrow_type == pa.int64()} | {
        "created_at": pa.array(["2024-01-02 10:00:00"] * 2),
        "last_updated": pa.array(["2024-01-02 10:00:00"] * 2),
        "agreed_delivery_date": pa.array(["2024-01-03"] * 2),
        "agreed_payment_date": pa.array(["2024-01-03"] * 2),
    }
    out = strict_table(
        pa.table({**base, "unit_price": pa.array([2.675, 3.1])}), sales, origin="s", locate=_row
    )
    assert out.column("unit_price").to_pylist() == [Decimal("2.68"), Decimal("3.10")]
    text = strict_table(
        pa.table({**base, "unit_price": pa.array(["2.675", "4"])}), sales, origin="s", locate=_row
    )
    assert text.column("unit_price").to_pylist() == [Decimal("2.68"), Decimal("4.00")]
    with pytest.raises(SnapshotLoadError, match=r"s: row 2, column unit_price: 1e\+20"):
        strict_table(
            pa.table({**base, "unit_price": pa.array([1.0, 1e20])}), sales, origin="s", locate=_row
        )


def test_string_null_only_in_address() -> None:
    address = source_table("address")
    raw = {c.name: pa.array(["NULL"]) for c in address.columns}
    raw |= {"address_id": pa.array([1]), "created_at": pa.array(["2024-01-02 10:00:00"]),
            "last_updated": pa.array(["2024-01-02 10:00:00"])}  # fmt: skip
    out = strict_table(pa.table(raw), address, origin="a", locate=_row)
    assert out.column("address_line_2").to_pylist() == [None]
    assert out.column("city").to_pylist() == ["NULL"]  # NOT NULL column keeps its text


def test_sub_millisecond_and_unknown_columns_are_refused() -> None:
    spec = source_table("transaction")
    with pytest.raises(SnapshotLoadError, match=r"row 1, column last_updated: .* milliseconds"):
        strict_table(
            _transactions(
                created_at=pa.array(["2024-01-02 10:00:01"] * 3),
                last_updated=pa.array(["2024-01-02 10:00:01.2345"] * 3),
            ),
            spec,
            origin="t",
            locate=_row,
        )
    with pytest.raises(SnapshotLoadError, match=r"unknown \['extra'\]"):
        strict_table(_transactions(extra=pa.array([1, 2, 3])), spec, origin="t", locate=_row)

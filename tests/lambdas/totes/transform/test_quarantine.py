"""Quarantined rows keep their values as text; these tests show the text casts back exactly."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from totes.contracts.ingestion import source_schema, to_landing_types
from totes.tables import source_table
from totes.transform.quarantine import CAPTURE_SEQ, Reasons, quarantine_records, row_json

MONEY = st.decimals(
    min_value=Decimal("-99999999.99"),
    max_value=Decimal("99999999.99"),
    places=2,
    allow_nan=False,
    allow_infinity=False,
)
MS_TIMES = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2199, 1, 1)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)
IDS = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TEXT = st.text(max_size=20)


def payments(draw: st.DrawFn) -> pa.Table:
    row = {
        "payment_id": draw(IDS),
        "created_at": draw(MS_TIMES),
        "last_updated": draw(MS_TIMES),
        "transaction_id": draw(IDS),
        "counterparty_id": draw(IDS),
        "payment_amount": draw(MONEY),
        "currency_id": draw(IDS),
        "payment_type_id": draw(IDS),
        "paid": draw(st.booleans()),
        "payment_date": draw(st.one_of(st.none(), TEXT)),
        "company_ac_number": draw(st.one_of(st.none(), IDS)),
        "counterparty_ac_number": draw(IDS),
    }
    return pa.Table.from_pylist([row], schema=source_schema("payment"))


@st.composite
def payment_rows(draw: st.DrawFn) -> pa.Table:
    return payments(draw)


@given(payment_rows())
def test_row_json_casts_back_to_the_exact_landed_values(rows: pa.Table) -> None:
    text = json.loads(row_json(rows).to_pylist()[0])
    assert all(v is None or isinstance(v, str) for v in text.values())
    as_text = pa.Table.from_pylist([text], schema=pa.schema([(n, pa.string()) for n in text]))
    assert to_landing_types("payment", as_text).equals(rows)


@given(st.lists(st.one_of(st.none(), MONEY), min_size=1, max_size=5))
def test_float_money_rounds_back_to_the_same_decimals(values: list[Decimal | None]) -> None:
    floats = pa.array([float("nan") if v is None else float(v) for v in values], pa.float64())
    money = landed_column("payment", pa.table({"payment_amount": floats}), "payment_amount")
    assert money.type == pa.decimal128(10, 2)
    assert money.to_pylist() == values


def landed_column(table: str, rows: pa.Table, column: str) -> pa.ChunkedArray:
    """``column`` of ``rows`` cast by the landing rules (the other columns are NULL)."""
    full = {c.name: pa.nulls(rows.num_rows, c.arrow_type) for c in source_table(table).columns}
    full[column] = rows[column]
    return to_landing_types(table, pa.table(full))[column]


@given(st.lists(st.one_of(st.none(), st.integers(-(2**53), 2**53)), min_size=1, max_size=5))
def test_float_ids_with_nan_become_nullable_integers(values: list[int | None]) -> None:
    floats = pa.array([float("nan") if v is None else float(v) for v in values], pa.float64())
    ids = landed_column("transaction", pa.table({"sales_order_id": floats}), "sales_order_id")
    assert ids.type == pa.int64()
    assert ids.to_pylist() == values


def test_reasons_collect_every_broken_rule_and_the_record_keeps_the_row() -> None:
    rows = pa.table(
        {
            "currency_id": pa.array([1, 2, 3], pa.int64()),
            "currency_code": ["GBP", None, "XYZ"],
            CAPTURE_SEQ: pa.array([0, 1, 2], pa.int64()),
        }
    )
    reasons = Reasons(3)
    reasons.add(pa.array([False, True, None]), "first")
    reasons.add(pa.array([False, True, True]), "second")
    records = quarantine_records("currency", rows, reasons, "currency_id").to_pylist()
    assert [(r["key"], r["reason"]) for r in records] == [(2, "first; second"), (3, "second")]
    assert json.loads(records[0]["row_json"]) == {"currency_id": "2", "currency_code": None}

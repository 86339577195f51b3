from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from totes.contracts.content_hash import _hex, row_hashes

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("at", pa.timestamp("ms")),
        ("amount", pa.decimal128(10, 2)),
        ("paid", pa.bool_()),
        ("text", pa.string()),
    ]
)
ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "at": datetime(2024, 2, 23, 9, 30, 1, 123000),
        "amount": Decimal("12.34"),
        "paid": True,
        "text": "Café",
    },
    {"id": 2, "at": None, "amount": Decimal("-0.01"), "paid": False, "text": ""},
    {"id": -3, "at": datetime(1999, 12, 31), "amount": None, "paid": None, "text": None},
]


def hashes(rows: list[dict[str, Any]], schema: pa.Schema = SCHEMA) -> list[str]:
    table = pa.Table.from_pylist(rows, schema=schema)
    return row_hashes(table, schema.names).to_pylist()


def test_the_definition_is_pinned() -> None:
    # Landed batches and extract states hold these values: a change to the definition needs a
    # new SCHEME (and the one-off re-hash of the states), not a new expectation here.
    assert hashes(ROWS) == ["70c808c1db00657f", "8905182f4200b071", "8c753390751292dc"]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("id", 10),
        ("at", datetime(2024, 2, 23, 9, 30, 1, 124000)),  # one millisecond later
        ("amount", Decimal("12.35")),
        ("amount", Decimal("-12.34")),
        ("paid", False),
        ("paid", None),
        ("text", "Cafe"),
        ("text", "éCaf"),
        ("text", "Café "),
        ("text", ""),
        ("text", None),
        ("text", "NULL"),
    ],
)
def test_any_change_to_any_column_changes_the_hash(column: str, value: Any) -> None:
    edited = {**ROWS[0], column: value}
    assert hashes([edited]) != hashes([ROWS[0]])


def test_values_moving_between_columns_change_the_hash() -> None:
    schema = pa.schema(
        [("a", pa.string()), ("b", pa.string()), ("n", pa.int64()), ("m", pa.int64())]
    )
    base = {"a": "ab", "b": "c", "n": 1, "m": 2}
    found = hashes(
        [
            base,
            {**base, "a": "a", "b": "bc"},
            {**base, "a": "c", "b": "ab"},
            {**base, "n": 2, "m": 1},
        ],
        schema,
    )
    assert len(set(found)) == 4


def test_equal_rows_hash_equal_wherever_they_sit() -> None:
    table = pa.Table.from_pylist(ROWS * 50, schema=SCHEMA)
    whole = row_hashes(table, SCHEMA.names).to_pylist()
    assert whole == hashes(ROWS) * 50
    # A slice (non-zero array offsets) and a table of many chunks give the same values.
    assert row_hashes(table.slice(7, 20), SCHEMA.names).to_pylist() == whole[7:27]
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=7))
    assert row_hashes(chunked, SCHEMA.names).to_pylist() == whole


def test_large_strings_and_strings_hash_the_same() -> None:
    large = pa.schema([f.with_type(pa.large_string()) if f.name == "text" else f for f in SCHEMA])
    assert hashes(ROWS, large) == hashes(ROWS)


def test_only_the_named_columns_count_in_their_order() -> None:
    table = pa.Table.from_pylist(ROWS, schema=SCHEMA)
    wider = table.append_column("extra", pa.array(["x", "y", "z"]))
    assert row_hashes(wider, SCHEMA.names).equals(row_hashes(table, SCHEMA.names))
    assert not row_hashes(table, ["text", "id"]).equals(row_hashes(table, ["id", "text"]))


def test_a_type_without_a_definition_is_refused() -> None:
    table = pa.table({"x": pa.array([1.5])})
    with pytest.raises(TypeError, match="double"):
        row_hashes(table, ["x"])


def test_hashes_are_written_as_sixteen_hex_digits_most_significant_first() -> None:
    values = [0, 1, 0xF0, 0x0123456789ABCDEF, 0xFEDCBA9876543210, 2**64 - 1]
    written = _hex(np.array(values, dtype=np.uint64)).to_pylist()
    assert written == [format(v, "016x") for v in values]

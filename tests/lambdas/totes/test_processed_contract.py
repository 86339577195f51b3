"""The processed lake is a contract between two stages that describe it separately: the transform
writes what its rules produce, the load stages what the warehouse spec declares. They must agree
column for column and type for type, or a batch would fail (or worse, cast) at load time."""

from __future__ import annotations

import pyarrow as pa
import pytest

from totes.contracts.warehouse import TABLES
from totes.transform.rules import warehouse_schema
from totes.transform.transformer import FACT_METADATA


def _fields(schema: pa.Schema) -> list[tuple[str, pa.DataType]]:
    return [(field.name, field.type) for field in schema]


@pytest.mark.parametrize("name", sorted(TABLES))
def test_transform_output_matches_what_the_load_stages(name: str) -> None:
    produced = warehouse_schema(name)
    if TABLES[name].is_fact:
        produced = pa.schema([*produced, *FACT_METADATA])
    assert _fields(produced) == _fields(TABLES[name].arrow_schema)


def test_every_warehouse_table_is_produced() -> None:
    assert set(TABLES) == {
        "dim_date",
        "dim_staff",
        "dim_location",
        "dim_design",
        "dim_currency",
        "dim_counterparty",
        "dim_payment_type",
        "dim_transaction",
        "fact_sales_order",
        "fact_purchase_order",
        "fact_payment",
    }

from __future__ import annotations

import pytest

from totes.errors import SchemaDriftError, SourceError
from totes.extract.drift import CatalogColumn, new_columns
from totes.tables import MONEY, SOURCE_TABLES, TIMESTAMP, Column, SourceTable


def _catalog_of(table: SourceTable) -> list[CatalogColumn]:
    def describe(column: Column) -> CatalogColumn:
        if column.select_sql is not None:
            return CatalogColumn(table.name, column.name, "USER-DEFINED", "SomeEnum")
        if column.arrow_type == MONEY:
            return CatalogColumn(table.name, column.name, "numeric", "numeric", 10, 2)
        if column.arrow_type == TIMESTAMP:
            return CatalogColumn(
                table.name, column.name, "timestamp without time zone", "timestamp"
            )
        if str(column.arrow_type) == "bool":
            return CatalogColumn(table.name, column.name, "boolean", "bool")
        if str(column.arrow_type) == "int64":
            return CatalogColumn(table.name, column.name, "integer", "int4", 32, 0)
        return CatalogColumn(table.name, column.name, "text", "text")

    return [describe(c) for c in table.columns]


def _full_catalog() -> list[CatalogColumn]:
    return [c for table in SOURCE_TABLES.values() for c in _catalog_of(table)]


def test_matching_catalog_has_no_new_columns() -> None:
    assert new_columns(SOURCE_TABLES, _full_catalog()) == {name: [] for name in SOURCE_TABLES}


def test_new_column_is_reported_for_landing() -> None:
    catalog = [*_full_catalog(), CatalogColumn("sales_order", "discount", "integer", "int4")]
    assert new_columns(SOURCE_TABLES, catalog)["sales_order"] == ["discount"]


def test_missing_required_column_names_table_and_column() -> None:
    catalog = [c for c in _full_catalog() if (c.table, c.name) != ("design", "file_name")]
    with pytest.raises(SchemaDriftError, match=r"table=design.*file_name"):
        new_columns(SOURCE_TABLES, catalog)


@pytest.mark.parametrize(
    ("table", "column", "retyped"),
    [
        ("sales_order", "unit_price", CatalogColumn("", "", "double precision", "float8")),
        ("sales_order", "unit_price", CatalogColumn("", "", "numeric", "numeric", 12, 2)),
        ("payment", "last_updated", CatalogColumn("", "", "timestamp with time zone", "tz")),
        ("payment", "paid", CatalogColumn("", "", "text", "text")),
        ("staff", "staff_id", CatalogColumn("", "", "text", "text")),
        ("staff", "email_address", CatalogColumn("", "", "integer", "int4")),
    ],
)
def test_retyped_column_fails(table: str, column: str, retyped: CatalogColumn) -> None:
    catalog = [
        CatalogColumn(
            table,
            column,
            retyped.data_type,
            retyped.udt_name,
            retyped.numeric_precision,
            retyped.numeric_scale,
        )
        if (c.table, c.name) == (table, column)
        else c
        for c in _full_catalog()
    ]
    with pytest.raises(SchemaDriftError, match=rf"table={table}.*column {column} changed type"):
        new_columns(SOURCE_TABLES, catalog)


def test_widened_integer_and_varchar_still_fit() -> None:
    catalog = [
        CatalogColumn(c.table, c.name, "bigint", "int8")
        if c.name == "units_sold"
        else CatalogColumn(c.table, c.name, "character varying", "varchar")
        if c.name == "currency_code"
        else c
        for c in _full_catalog()
    ]
    assert not any(new_columns(SOURCE_TABLES, catalog).values())


def test_missing_table_is_a_source_error() -> None:
    catalog = [c for c in _full_catalog() if c.table != "payment"]
    with pytest.raises(SourceError, match="table=payment"):
        new_columns(SOURCE_TABLES, catalog)


def test_new_column_clashing_with_bookkeeping_fails() -> None:
    catalog = [*_full_catalog(), CatalogColumn("currency", "_op", "text", "text")]
    with pytest.raises(SchemaDriftError, match="table=currency"):
        new_columns(SOURCE_TABLES, catalog)

"""The 11 totesys source tables: the allow-list of identifiers and their exact column types.

Every SQL statement that names a table or column takes the name from here, never from input,
so identifiers are allow-listed and values travel as bound parameters. The Arrow types are the
landing zone's contract: int64 ids, decimal(10,2) money, millisecond timestamps without a time
zone, text dates kept as text, enum labels as text and nullable ints that stay ints.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TIMESTAMP = pa.timestamp("ms")
MONEY = pa.decimal128(10, 2)


@dataclass(frozen=True)
class Column:
    name: str
    arrow_type: pa.DataType
    nullable: bool = False
    # SQL expression that reads the column in its landing form (enum labels become text).
    select_sql: str | None = None

    @property
    def select_expression(self) -> str:
        return self.select_sql or f'"{self.name}"'


@dataclass(frozen=True)
class SourceTable:
    name: str
    columns: tuple[Column, ...]

    @property
    def primary_key(self) -> str:
        return f"{self.name}_id"

    @property
    def quoted(self) -> str:
        return f'"{self.name}"'

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns]
        )

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no column {name!r}")


def _id(name: str, nullable: bool = False) -> Column:
    return Column(name, pa.int64(), nullable)


def _text(name: str, nullable: bool = False) -> Column:
    return Column(name, pa.string(), nullable)


def _enum(name: str) -> Column:
    return Column(name, pa.string(), select_sql=f'"{name}"::text')


_CREATED = Column("created_at", TIMESTAMP)
_UPDATED = Column("last_updated", TIMESTAMP)

# Column order is the real one; code must still always address columns by name.
SOURCE_TABLES: dict[str, SourceTable] = {
    t.name: t
    for t in (
        SourceTable(
            "address",
            (
                _id("address_id"),
                _text("address_line_1"),
                _text("address_line_2", nullable=True),
                _text("district", nullable=True),
                _text("city"),
                _text("postal_code"),
                _text("country"),
                _text("phone"),
                _CREATED,
                _UPDATED,
            ),
        ),
        SourceTable(
            "counterparty",
            (
                _id("counterparty_id"),
                _text("counterparty_legal_name"),
                _id("legal_address_id"),
                _text("commercial_contact", nullable=True),
                _text("delivery_contact", nullable=True),
                _CREATED,
                _UPDATED,
            ),
        ),
        SourceTable("currency", (_id("currency_id"), _text("currency_code"), _CREATED, _UPDATED)),
        SourceTable(
            "department",
            (
                _id("department_id"),
                _text("department_name"),
                _text("location", nullable=True),
                _text("manager", nullable=True),
                _CREATED,
                _UPDATED,
            ),
        ),
        SourceTable(
            "design",
            (
                _id("design_id"),
                _CREATED,
                _text("design_name"),
                _text("file_location"),
                _text("file_name"),
                _UPDATED,
            ),
        ),
        SourceTable(
            "staff",
            (
                _id("staff_id"),
                _text("first_name"),
                _text("last_name"),
                _id("department_id"),
                _text("email_address"),
                _CREATED,
                _UPDATED,
            ),
        ),
        SourceTable(
            "payment_type",
            (_id("payment_type_id"), _enum("payment_type_name"), _CREATED, _UPDATED),
        ),
        SourceTable(
            "sales_order",
            (
                _id("sales_order_id"),
                _CREATED,
                _UPDATED,
                _id("design_id"),
                _id("staff_id"),
                _id("counterparty_id"),
                _id("units_sold"),
                Column("unit_price", MONEY),
                _id("currency_id"),
                _text("agreed_delivery_date"),
                _text("agreed_payment_date"),
                _id("agreed_delivery_location_id"),
            ),
        ),
        SourceTable(
            "purchase_order",
            (
                _id("purchase_order_id"),
                _CREATED,
                _UPDATED,
                _id("staff_id"),
                _id("counterparty_id"),
                _text("item_code"),
                _id("item_quantity"),
                Column("item_unit_price", MONEY),
                _id("currency_id"),
                _text("agreed_delivery_date"),
                _text("agreed_payment_date"),
                _id("agreed_delivery_location_id"),
            ),
        ),
        SourceTable(
            "transaction",
            (
                _id("transaction_id"),
                _enum("transaction_type"),
                _id("sales_order_id", nullable=True),
                _id("purchase_order_id", nullable=True),
                _CREATED,
                _UPDATED,
            ),
        ),
        SourceTable(
            "payment",
            (
                _id("payment_id"),
                _CREATED,
                _UPDATED,
                _id("transaction_id"),
                _id("counterparty_id"),
                Column("payment_amount", MONEY),
                _id("currency_id"),
                _id("payment_type_id"),
                Column("paid", pa.bool_()),
                _text("payment_date"),
                _id("company_ac_number"),
                _id("counterparty_ac_number"),
            ),
        ),
    )
}

# Foreign-key order: every table comes after the tables it references.
LOAD_ORDER: tuple[str, ...] = (
    "address",
    "counterparty",
    "currency",
    "department",
    "design",
    "staff",
    "payment_type",
    "sales_order",
    "purchase_order",
    "transaction",
    "payment",
)


def source_table(name: str) -> SourceTable:
    """Return the spec of an allow-listed table, or raise for anything else."""
    try:
        return SOURCE_TABLES[name]
    except KeyError:
        raise KeyError(f"{name!r} is not one of the 11 totesys tables") from None

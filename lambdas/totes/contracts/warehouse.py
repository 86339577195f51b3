"""The 11 warehouse tables as data: the allow-list every generated SQL statement draws from.

Column names and SQL types are those of the course warehouse, unchanged; the Arrow types are the
processed lake's contract. Facts add the version metadata that makes loading idempotent and
history ordered (see ``docs/warehouse.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

MONEY = pa.decimal128(10, 2)
TIME_MS = pa.time32("ms")

_ARROW = {
    "integer": pa.int64(),
    "varchar": pa.string(),
    "date": pa.date32(),
    "time": TIME_MS,
    "numeric(10,2)": MONEY,
    "boolean": pa.bool_(),
    "text": pa.string(),
    "bigint": pa.int64(),
}


@dataclass(frozen=True)
class WColumn:
    name: str
    sql_type: str
    nullable: bool = False

    @property
    def arrow_type(self) -> pa.DataType:
        return _ARROW[self.sql_type]


@dataclass(frozen=True)
class WarehouseTable:
    name: str
    kind: str  # "date", "dimension" or "fact"
    key: str  # dimension key, or a fact's natural (source) id
    columns: tuple[WColumn, ...]  # the course columns, without a fact's record id
    record_id: str | None = None
    references: dict[str, str] = field(default_factory=dict)  # fact column -> dimension table

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def is_fact(self) -> bool:
        return self.kind == "fact"

    @property
    def staged_columns(self) -> tuple[WColumn, ...]:
        """What a processed Parquet file carries for this table, in COPY order."""
        return self.columns + (FACT_METADATA if self.is_fact else ())

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.staged_columns]
        )

    @property
    def version_key(self) -> tuple[str, ...]:
        """A fact version's identity: the columns of its unique constraint."""
        return (self.key, "last_updated_date", "last_updated_time", "content_hash", "is_deleted")

    @property
    def current_view(self) -> str:
        return f"{self.name}_current"

    @property
    def version_constraint(self) -> str:
        return f"{self.name}_version_key"


FACT_METADATA: tuple[WColumn, ...] = (
    WColumn("content_hash", "text"),
    WColumn("batch_id", "text"),
    WColumn("sequence", "bigint"),
    WColumn("capture_seq", "bigint"),
    WColumn("is_deleted", "boolean"),
)


def _c(name: str, sql_type: str = "integer", nullable: bool = False) -> WColumn:
    return WColumn(name, sql_type, nullable)


def _v(name: str, nullable: bool = False) -> WColumn:
    return WColumn(name, "varchar", nullable)


_STAMPS = (
    _c("created_date", "date"),
    _c("created_time", "time"),
    _c("last_updated_date", "date"),
    _c("last_updated_time", "time"),
)

DIM_DATE = WarehouseTable(
    "dim_date",
    "date",
    "date_id",
    (
        _c("date_id", "date"),
        _c("year"),
        _c("month"),
        _c("day"),
        _c("day_of_week"),
        _v("day_name"),
        _v("month_name"),
        _c("quarter"),
    ),
)

DIMENSIONS: tuple[WarehouseTable, ...] = (
    WarehouseTable(
        "dim_staff",
        "dimension",
        "staff_id",
        (
            _c("staff_id"),
            _v("first_name"),
            _v("last_name"),
            _v("department_name"),
            _v("location"),
            _v("email_address"),
        ),
    ),
    WarehouseTable(
        "dim_location",
        "dimension",
        "location_id",
        (
            _c("location_id"),
            _v("address_line_1"),
            _v("address_line_2", nullable=True),
            _v("district", nullable=True),
            _v("city"),
            _v("postal_code"),
            _v("country"),
            _v("phone"),
        ),
    ),
    WarehouseTable(
        "dim_design",
        "dimension",
        "design_id",
        (_c("design_id"), _v("design_name"), _v("file_location"), _v("file_name")),
    ),
    WarehouseTable(
        "dim_currency",
        "dimension",
        "currency_id",
        (_c("currency_id"), _v("currency_code"), _v("currency_name")),
    ),
    WarehouseTable(
        "dim_counterparty",
        "dimension",
        "counterparty_id",
        (
            _c("counterparty_id"),
            _v("counterparty_legal_name"),
            _v("counterparty_legal_address_line_1"),
            _v("counterparty_legal_address_line_2", nullable=True),
            _v("counterparty_legal_district", nullable=True),
            _v("counterparty_legal_city"),
            _v("counterparty_legal_postal_code"),
            _v("counterparty_legal_country"),
            _v("counterparty_legal_phone_number"),
        ),
    ),
    WarehouseTable(
        "dim_payment_type",
        "dimension",
        "payment_type_id",
        (_c("payment_type_id"), _v("payment_type_name")),
    ),
    WarehouseTable(
        "dim_transaction",
        "dimension",
        "transaction_id",
        (
            _c("transaction_id"),
            _v("transaction_type"),
            _c("sales_order_id", nullable=True),
            _c("purchase_order_id", nullable=True),
        ),
    ),
)

_ORDER_REFS = {
    "created_date": "dim_date",
    "last_updated_date": "dim_date",
    "counterparty_id": "dim_counterparty",
    "currency_id": "dim_currency",
    "agreed_payment_date": "dim_date",
    "agreed_delivery_date": "dim_date",
    "agreed_delivery_location_id": "dim_location",
}

FACTS: tuple[WarehouseTable, ...] = (
    WarehouseTable(
        "fact_sales_order",
        "fact",
        "sales_order_id",
        (
            _c("sales_order_id"),
            *_STAMPS,
            _c("sales_staff_id"),
            _c("counterparty_id"),
            _c("units_sold"),
            _c("unit_price", "numeric(10,2)"),
            _c("currency_id"),
            _c("design_id"),
            _c("agreed_payment_date", "date"),
            _c("agreed_delivery_date", "date"),
            _c("agreed_delivery_location_id"),
        ),
        record_id="sales_record_id",
        references={**_ORDER_REFS, "sales_staff_id": "dim_staff", "design_id": "dim_design"},
    ),
    WarehouseTable(
        "fact_purchase_order",
        "fact",
        "purchase_order_id",
        (
            _c("purchase_order_id"),
            *_STAMPS,
            _c("staff_id"),
            _c("counterparty_id"),
            _v("item_code"),
            _c("item_quantity"),
            _c("item_unit_price", "numeric(10,2)"),
            _c("currency_id"),
            _c("agreed_delivery_date", "date"),
            _c("agreed_payment_date", "date"),
            _c("agreed_delivery_location_id"),
        ),
        record_id="purchase_record_id",
        references={**_ORDER_REFS, "staff_id": "dim_staff"},
    ),
    WarehouseTable(
        "fact_payment",
        "fact",
        "payment_id",
        (
            _c("payment_id"),
            *_STAMPS,
            _c("transaction_id"),
            _c("counterparty_id"),
            _c("payment_amount", "numeric(10,2)"),
            _c("currency_id"),
            _c("payment_type_id"),
            _c("paid", "boolean"),
            _c("payment_date", "date"),
        ),
        record_id="payment_record_id",
        references={
            "created_date": "dim_date",
            "last_updated_date": "dim_date",
            "transaction_id": "dim_transaction",
            "counterparty_id": "dim_counterparty",
            "currency_id": "dim_currency",
            "payment_type_id": "dim_payment_type",
            "payment_date": "dim_date",
        },
    ),
)

# Load order inside one batch: dates, the other dimensions, then facts.
LOAD_ORDER: tuple[WarehouseTable, ...] = (DIM_DATE, *DIMENSIONS, *FACTS)
TABLES: dict[str, WarehouseTable] = {t.name: t for t in LOAD_ORDER}
DIMENSION_KEYS: dict[str, str] = {t.name: t.key for t in (DIM_DATE, *DIMENSIONS)}


def warehouse_table(name: str) -> WarehouseTable:
    """The spec of an allow-listed warehouse table, or KeyError for anything else."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"{name!r} is not one of the 11 warehouse tables") from None

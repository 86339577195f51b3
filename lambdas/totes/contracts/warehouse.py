"""The 11 warehouse tables, each declared once: columns, SQL types, nullability, where each column
comes from in the source, and what a fact column refers to.

Everything else is derived from these declarations: the transform's output schema and mapping
rules (:mod:`totes.transform.rules`), the load's staging tables and merge SQL
(:mod:`totes.load.merge`), the check's comparisons. The migration SQL stays SQL, and a test fails
when it and these declarations disagree. Column names and SQL types are those of the course
warehouse, unchanged; facts add the version metadata of :data:`FACT_METADATA` that makes loading
idempotent and history ordered (see ``docs/warehouse.md``). Identifiers here are the allow-list
every generated SQL statement draws from.

To add a column to a fact: declare it here (with its source column) and add one migration; see
``docs/warehouse.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

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

# How a warehouse column is built from its source column.
COPY = "copy"  # as it is
DATE_PART = "date"  # the date of a timestamp
TIME_PART = "time"  # the time of day of a timestamp
TEXT_DATE = "text_date"  # a YYYY-MM-DD text parsed to a date
DERIVED = "derived"  # computed by a rule with no single source column (currency_name, dim_date)


@dataclass(frozen=True)
class WColumn:
    name: str
    sql_type: str
    nullable: bool = False
    source: str | None = None  # the source column it is built from
    build: str = COPY
    joined: bool = False  # the source column belongs to the table's join, not its own source
    references: str | None = None  # the warehouse table a fact column refers to

    @property
    def arrow_type(self) -> pa.DataType:
        return _ARROW[self.sql_type]


@dataclass(frozen=True)
class Join:
    """A dimension built from two source tables: its own, and ``table`` that ``foreign_key``
    (a column of its own table) points at."""

    table: str
    foreign_key: str


@dataclass(frozen=True)
class WarehouseTable:
    name: str
    kind: str  # "date", "dimension" or "fact"
    key: str  # dimension key, or a fact's natural (source) id
    columns: tuple[WColumn, ...]  # the course columns, without a fact's record id
    source: str | None = None  # the source table it is built from (None: dim_date)
    join: Join | None = None
    record_id: str | None = None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def is_fact(self) -> bool:
        return self.kind == "fact"

    @property
    def references(self) -> dict[str, str]:
        """Fact column -> the warehouse table it refers to."""
        return {c.name: c.references for c in self.columns if c.references}

    @property
    def staged_columns(self) -> tuple[WColumn, ...]:
        """What a processed Parquet file carries for this table, in COPY order."""
        return self.columns + (FACT_METADATA if self.is_fact else ())

    @property
    def data_schema(self) -> pa.Schema:
        """The transform's output: the course columns with their exact Arrow types."""
        return pa.schema([pa.field(c.name, c.arrow_type) for c in self.columns])

    @property
    def arrow_schema(self) -> pa.Schema:
        """A processed file, metadata included, as the load stages it."""
        return pa.schema(
            [pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.staged_columns]
        )

    @property
    def version_key(self) -> tuple[str, ...]:
        """What makes a fact version differ from the one before it of the same id."""
        return (self.key, "last_updated_date", "last_updated_time", "content_hash", "is_deleted")

    @property
    def current_view(self) -> str:
        return f"{self.name}_current"


# Load metadata of every fact row; their Arrow types are what the processed lake carries.
FACT_METADATA: tuple[WColumn, ...] = (
    WColumn("content_hash", "text"),
    WColumn("batch_id", "text"),
    WColumn("sequence", "bigint"),
    WColumn("capture_seq", "bigint"),
    WColumn("is_deleted", "boolean"),
)


def _int(
    name: str,
    source: str | None = None,
    *,
    nullable: bool = False,
    references: str | None = None,
) -> WColumn:
    return WColumn(name, "integer", nullable, source or name, references=references)


def _text(
    name: str, source: str | None = None, *, nullable: bool = False, joined: bool = False
) -> WColumn:
    return WColumn(name, "varchar", nullable, source or name, joined=joined)


def _money(name: str) -> WColumn:
    return WColumn(name, "numeric(10,2)", source=name)


def _text_date(name: str) -> WColumn:
    return WColumn(name, "date", source=name, build=TEXT_DATE, references="dim_date")


# created_at and last_updated, split into a date (a dim_date reference) and a time.
_STAMPS = (
    WColumn("created_date", "date", source="created_at", build=DATE_PART, references="dim_date"),
    WColumn("created_time", "time", source="created_at", build=TIME_PART),
    WColumn(
        "last_updated_date",
        "date",
        source="last_updated",
        build=DATE_PART,
        references="dim_date",
    ),
    WColumn("last_updated_time", "time", source="last_updated", build=TIME_PART),
)


def _calendar(name: str, sql_type: str) -> WColumn:
    return WColumn(name, sql_type, build=DERIVED)


DIM_DATE = WarehouseTable(
    "dim_date",
    "date",
    "date_id",
    (
        _calendar("date_id", "date"),
        _calendar("year", "integer"),
        _calendar("month", "integer"),
        _calendar("day", "integer"),
        _calendar("day_of_week", "integer"),
        _calendar("day_name", "varchar"),
        _calendar("month_name", "varchar"),
        _calendar("quarter", "integer"),
    ),
)

_ADDRESS_PARTS = ("address_line_1", "address_line_2", "district", "city", "postal_code", "country")

DIMENSIONS: tuple[WarehouseTable, ...] = (
    WarehouseTable(
        "dim_staff",
        "dimension",
        "staff_id",
        (
            _int("staff_id"),
            _text("first_name"),
            _text("last_name"),
            _text("department_name", joined=True),
            _text("location", joined=True),
            _text("email_address"),
        ),
        source="staff",
        join=Join("department", "department_id"),
    ),
    WarehouseTable(
        "dim_location",
        "dimension",
        "location_id",
        (
            _int("location_id", "address_id"),
            _text("address_line_1"),
            _text("address_line_2", nullable=True),
            _text("district", nullable=True),
            _text("city"),
            _text("postal_code"),
            _text("country"),
            _text("phone"),
        ),
        source="address",
    ),
    WarehouseTable(
        "dim_design",
        "dimension",
        "design_id",
        (_int("design_id"), _text("design_name"), _text("file_location"), _text("file_name")),
        source="design",
    ),
    WarehouseTable(
        "dim_currency",
        "dimension",
        "currency_id",
        (
            _int("currency_id"),
            _text("currency_code"),
            WColumn("currency_name", "varchar", build=DERIVED),  # looked up from the code
        ),
        source="currency",
    ),
    WarehouseTable(
        "dim_counterparty",
        "dimension",
        "counterparty_id",
        (
            _int("counterparty_id"),
            _text("counterparty_legal_name"),
            *(
                _text(
                    f"counterparty_legal_{part}",
                    part,
                    nullable=part in ("address_line_2", "district"),
                    joined=True,
                )
                for part in _ADDRESS_PARTS
            ),
            _text("counterparty_legal_phone_number", "phone", joined=True),
        ),
        source="counterparty",
        join=Join("address", "legal_address_id"),
    ),
    WarehouseTable(
        "dim_payment_type",
        "dimension",
        "payment_type_id",
        (_int("payment_type_id"), _text("payment_type_name")),
        source="payment_type",
    ),
    WarehouseTable(
        "dim_transaction",
        "dimension",
        "transaction_id",
        (
            _int("transaction_id"),
            _text("transaction_type"),
            _int("sales_order_id", nullable=True),
            _int("purchase_order_id", nullable=True),
        ),
        source="transaction",
    ),
)

FACTS: tuple[WarehouseTable, ...] = (
    WarehouseTable(
        "fact_sales_order",
        "fact",
        "sales_order_id",
        (
            _int("sales_order_id"),
            *_STAMPS,
            _int("sales_staff_id", "staff_id", references="dim_staff"),
            _int("counterparty_id", references="dim_counterparty"),
            _int("units_sold"),
            _money("unit_price"),
            _int("currency_id", references="dim_currency"),
            _int("design_id", references="dim_design"),
            _text_date("agreed_payment_date"),
            _text_date("agreed_delivery_date"),
            _int("agreed_delivery_location_id", references="dim_location"),
        ),
        source="sales_order",
        record_id="sales_record_id",
    ),
    WarehouseTable(
        "fact_purchase_order",
        "fact",
        "purchase_order_id",
        (
            _int("purchase_order_id"),
            *_STAMPS,
            _int("staff_id", references="dim_staff"),
            _int("counterparty_id", references="dim_counterparty"),
            _text("item_code"),
            _int("item_quantity"),
            _money("item_unit_price"),
            _int("currency_id", references="dim_currency"),
            _text_date("agreed_delivery_date"),
            _text_date("agreed_payment_date"),
            _int("agreed_delivery_location_id", references="dim_location"),
        ),
        source="purchase_order",
        record_id="purchase_record_id",
    ),
    WarehouseTable(
        "fact_payment",
        "fact",
        "payment_id",
        (
            _int("payment_id"),
            *_STAMPS,
            _int("transaction_id", references="dim_transaction"),
            _int("counterparty_id", references="dim_counterparty"),
            _money("payment_amount"),
            _int("currency_id", references="dim_currency"),
            _int("payment_type_id", references="dim_payment_type"),
            WColumn("paid", "boolean", source="paid"),
            _text_date("payment_date"),
        ),
        source="payment",
        record_id="payment_record_id",
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

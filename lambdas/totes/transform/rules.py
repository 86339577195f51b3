"""The transform rules: source rows in, warehouse rows and bad rows out (pure Arrow, no I/O).

One function, :func:`model`, applies every rule to a batch of landed rows against the current
state of the source tables; :func:`full_model` is the same call with everything as the batch and
no prior state, which is what ``totes check`` reconciles the warehouse with. Keeping a single
code path means the check can only disagree with the warehouse when the data path is wrong.

Decisions kept here:

* A row that breaks a rule is quarantined, never dropped; the rest of the batch continues.
  References resolve against the batch plus the current state (a new staff row with a
  department landed long ago is fine; one whose department nobody has seen is not).
* Dimension keys are the source ids. A tombstone (``_op == 'delete'``) of a dimension source
  row keeps the dimension row as last captured: fact history references it.
* A changed address rebuilds every counterparty that uses it, and a changed department every
  staff member in it, from the state; that is what makes two-table dimensions right when only
  one side changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from totes.errors import TransformError
from totes.tables import LOAD_ORDER, source_table
from totes.transform.dates import (
    DATE,
    DIM_DATE_SCHEMA,
    TIME,
    calendar,
    parse_text_dates,
    split_timestamp,
)
from totes.transform.quarantine import Reasons, quarantine_records

CURRENCY_NAMES: dict[str, str] = {"GBP": "Pound Sterling", "USD": "US Dollar", "EUR": "Euro"}

# Source tables whose current rows a dimension or a reference check needs.
STATE_TABLES: tuple[str, ...] = (
    "address",
    "counterparty",
    "currency",
    "department",
    "design",
    "staff",
    "payment_type",
    "transaction",
)

FACT_SOURCES: dict[str, str] = {
    "fact_sales_order": "sales_order",
    "fact_purchase_order": "purchase_order",
    "fact_payment": "payment",
}

# (column, referenced source table): the id must exist in the batch or the current state.
REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "counterparty": (("legal_address_id", "address"),),
    "staff": (("department_id", "department"),),
    "sales_order": (
        ("staff_id", "staff"),
        ("counterparty_id", "counterparty"),
        ("currency_id", "currency"),
        ("design_id", "design"),
        ("agreed_delivery_location_id", "address"),
    ),
    "purchase_order": (
        ("staff_id", "staff"),
        ("counterparty_id", "counterparty"),
        ("currency_id", "currency"),
        ("agreed_delivery_location_id", "address"),
    ),
    "payment": (
        ("transaction_id", "transaction"),
        ("counterparty_id", "counterparty"),
        ("currency_id", "currency"),
        ("payment_type_id", "payment_type"),
    ),
}

TEXT_DATES: dict[str, tuple[str, ...]] = {
    "sales_order": ("agreed_delivery_date", "agreed_payment_date"),
    "purchase_order": ("agreed_delivery_date", "agreed_payment_date"),
    "payment": ("payment_date",),
}

# Kinds of warehouse column: copied as is, or derived from a source column.
COPY, DATE_PART, TIME_PART, TEXT_DATE = "copy", "date", "time", "text_date"


@dataclass(frozen=True)
class Target:
    name: str
    source: str
    kind: str = COPY
    required: bool = True


def _split(prefix: str, source: str) -> tuple[Target, Target]:
    return Target(f"{prefix}_date", source, DATE_PART), Target(f"{prefix}_time", source, TIME_PART)


def _same(*names: str) -> tuple[Target, ...]:
    return tuple(Target(n, n) for n in names)


_STAMPS = (*_split("created", "created_at"), *_split("last_updated", "last_updated"))

# Warehouse columns in warehouse_schema.sql order (facts without the serial *_record_id).
WAREHOUSE: dict[str, tuple[str, tuple[Target, ...]]] = {
    "fact_sales_order": (
        "sales_order",
        (
            Target("sales_order_id", "sales_order_id"),
            *_STAMPS,
            Target("sales_staff_id", "staff_id"),
            *_same("counterparty_id", "units_sold", "unit_price", "currency_id", "design_id"),
            Target("agreed_payment_date", "agreed_payment_date", TEXT_DATE),
            Target("agreed_delivery_date", "agreed_delivery_date", TEXT_DATE),
            Target("agreed_delivery_location_id", "agreed_delivery_location_id"),
        ),
    ),
    "fact_purchase_order": (
        "purchase_order",
        (
            Target("purchase_order_id", "purchase_order_id"),
            *_STAMPS,
            *_same("staff_id", "counterparty_id", "item_code", "item_quantity"),
            *_same("item_unit_price", "currency_id"),
            Target("agreed_delivery_date", "agreed_delivery_date", TEXT_DATE),
            Target("agreed_payment_date", "agreed_payment_date", TEXT_DATE),
            Target("agreed_delivery_location_id", "agreed_delivery_location_id"),
        ),
    ),
    "fact_payment": (
        "payment",
        (
            Target("payment_id", "payment_id"),
            *_STAMPS,
            *_same("transaction_id", "counterparty_id", "payment_amount", "currency_id"),
            *_same("payment_type_id", "paid"),
            Target("payment_date", "payment_date", TEXT_DATE),
        ),
    ),
    "dim_staff": (
        "staff",
        (
            *_same("staff_id", "first_name", "last_name", "department_name", "location"),
            Target("email_address", "email_address"),
        ),
    ),
    "dim_location": (
        "address",
        (
            Target("location_id", "address_id"),
            Target("address_line_1", "address_line_1"),
            Target("address_line_2", "address_line_2", required=False),
            Target("district", "district", required=False),
            *_same("city", "postal_code", "country", "phone"),
        ),
    ),
    "dim_design": ("design", _same("design_id", "design_name", "file_location", "file_name")),
    "dim_currency": ("currency", _same("currency_id", "currency_code", "currency_name")),
    "dim_counterparty": (
        "counterparty",
        (
            Target("counterparty_id", "counterparty_id"),
            Target("counterparty_legal_name", "counterparty_legal_name"),
            Target("counterparty_legal_address_line_1", "address_line_1"),
            Target("counterparty_legal_address_line_2", "address_line_2", required=False),
            Target("counterparty_legal_district", "district", required=False),
            Target("counterparty_legal_city", "city"),
            Target("counterparty_legal_postal_code", "postal_code"),
            Target("counterparty_legal_country", "country"),
            Target("counterparty_legal_phone_number", "phone"),
        ),
    ),
    "dim_transaction": (
        "transaction",
        (
            Target("transaction_id", "transaction_id"),
            Target("transaction_type", "transaction_type"),
            Target("sales_order_id", "sales_order_id", required=False),
            Target("purchase_order_id", "purchase_order_id", required=False),
        ),
    ),
    "dim_payment_type": ("payment_type", _same("payment_type_id", "payment_type_name")),
}

WAREHOUSE_TABLES: tuple[str, ...] = (
    "dim_date",
    "dim_location",
    "dim_counterparty",
    "dim_staff",
    "dim_design",
    "dim_currency",
    "dim_payment_type",
    "dim_transaction",
    "fact_sales_order",
    "fact_purchase_order",
    "fact_payment",
)

# Source columns a NOT NULL warehouse column is built from, beyond the ones mapped one to one.
_EXTRA_REQUIRED: dict[str, tuple[str, ...]] = {
    "counterparty": ("legal_address_id",),
    "staff": ("department_id",),
    "department": ("department_id", "department_name", "location"),
}
# Columns that come from the other side of a join, not from the dimension's own source table.
_JOINED = {
    "dim_staff": {"department_name", "location"},
    "dim_counterparty": {
        "address_line_1",
        "address_line_2",
        "district",
        "city",
        "postal_code",
        "country",
        "phone",
    },
    "dim_currency": {"currency_name"},
}


# The other side of each two-table dimension.
_JOIN_OTHER = {"dim_staff": "department", "dim_counterparty": "address"}


def _arrow_type(name: str, target: Target) -> pa.DataType:
    if target.kind == TIME_PART:
        return TIME
    if target.kind in (DATE_PART, TEXT_DATE):
        return DATE
    if target.name == "currency_name":
        return pa.string()
    source = WAREHOUSE[name][0]
    if target.source in _JOINED.get(name, set()):
        source = _JOIN_OTHER[name]
    return source_table(source).column(target.source).arrow_type


def warehouse_schema(name: str) -> pa.Schema:
    """The exact Arrow schema of a warehouse table's data columns."""
    if name == "dim_date":
        return DIM_DATE_SCHEMA
    return pa.schema([pa.field(t.name, _arrow_type(name, t)) for t in WAREHOUSE[name][1]])


def _required_columns(table: str) -> tuple[str, ...]:
    required: list[str] = [source_table(table).primary_key]
    for name, (source, targets) in WAREHOUSE.items():
        if source != table:
            continue
        joined = _JOINED.get(name, set())
        required += [t.source for t in targets if t.required and t.source not in joined]
    required += _EXTRA_REQUIRED.get(table, ())
    return tuple(dict.fromkeys(required))


REQUIRED: dict[str, tuple[str, ...]] = {name: _required_columns(name) for name in LOAD_ORDER}


@dataclass(frozen=True)
class Model:
    """What one batch becomes.

    ``tables``: the 11 warehouse tables (facts without the load metadata);
    ``accepted``: per source table the batch rows that passed, in landed order, with any extra
    landed columns (the facts' ``tables`` rows line up with these one to one);
    ``quarantine``: per source table the rejected rows; ``state``: the current source rows after
    the batch; ``changed_state``: the state tables this batch changed.
    """

    tables: dict[str, pa.Table]
    accepted: dict[str, pa.Table]
    quarantine: dict[str, pa.Table]
    state: dict[str, pa.Table]
    changed_state: frozenset[str]


def landing_schema(table: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow_type) for c in source_table(table).columns])


def _conform(table: str, rows: pa.Table | None) -> pa.Table:
    """Check the landed columns against the contract; keep extra columns for the record."""
    if rows is None:
        return landing_schema(table).empty_table()
    for column in source_table(table).columns:
        if column.name not in rows.column_names:
            raise TransformError(f"landed rows lack column {column.name}", table=table)
        actual = rows.schema.field(column.name).type
        if actual != column.arrow_type:
            raise TransformError(
                f"column {column.name} is {actual}, the landing contract says {column.arrow_type}",
                table=table,
            )
    pk = rows.column(source_table(table).primary_key)
    if pc.count_distinct(pk).as_py() != len(pk) - pk.null_count:
        raise TransformError("a primary key appears twice in one batch", table=table)
    return rows


def upsert(current: pa.Table | None, rows: pa.Table, table: str) -> pa.Table:
    """The current rows of ``table`` after ``rows`` replace theirs, sorted by key."""
    schema = landing_schema(table)
    key = source_table(table).primary_key
    incoming = rows.select(schema.names).cast(schema)
    if current is None:
        merged = incoming
    else:
        kept = current.select(schema.names).cast(schema)
        kept = kept.filter(pc.invert(pc.is_in(kept.column(key), incoming.column(key))))
        merged = pa.concat_tables([kept, incoming])
    return merged.sort_by(key)


def _screen(table: str, rows: pa.Table, state: Mapping[str, pa.Table]) -> Reasons:
    reasons = Reasons(rows.num_rows)
    for column in REQUIRED[table]:
        reasons.add(pc.is_null(rows.column(column)), f"{column} is NULL")
    for column in TEXT_DATES.get(table, ()):
        reasons.add(parse_text_dates(rows.column(column))[1], f"{column} is not a YYYY-MM-DD date")
    if table == "currency":
        known = pa.array(sorted(CURRENCY_NAMES))
        codes = rows.column("currency_code")
        reasons.add(
            pc.and_(pc.is_valid(codes), pc.invert(pc.is_in(codes, known))),
            "currency_code is not one of " + ", ".join(sorted(CURRENCY_NAMES)),
        )
    for column, target in REFERENCES.get(table, ()):
        current = state.get(target)
        ids = rows.column(column)
        known_ids = (
            current.column(source_table(target).primary_key)
            if current is not None
            else pa.array([], pa.int64())
        )
        reasons.add(
            pc.and_(pc.is_valid(ids), pc.invert(pc.is_in(ids, known_ids))),
            f"{column} refers to a {target} in neither the batch nor the current state",
        )
    return reasons


def _build(name: str, rows: pa.Table) -> pa.Table:
    _, targets = WAREHOUSE[name]
    schema = warehouse_schema(name)
    columns: list[pa.Array | pa.ChunkedArray] = []
    for target in targets:
        values = rows.column(target.source)
        if target.kind == DATE_PART:
            values = split_timestamp(values)[0]
        elif target.kind == TIME_PART:
            values = split_timestamp(values)[1]
        elif target.kind == TEXT_DATE:
            values = parse_text_dates(values)[0]
        columns.append(pc.cast(values, schema.field(target.name).type))
    return pa.table(columns, schema=schema)


def _ids(rows: pa.Table, table: str) -> pa.ChunkedArray:
    return rows.column(source_table(table).primary_key)


def _joined(left: pa.Table, right: pa.Table, key: str, right_key: str, keep: list[str]) -> pa.Table:
    """``left`` inner-joined to the ``keep`` columns of ``right``, in ``left`` key order."""
    right = right.select([right_key, *keep])
    if right_key != key:
        right = right.rename_columns([key, *keep])
    return left.join(right, keys=key, join_type="inner", coalesce_keys=True)


def _two_sided(
    name: str,
    state: Mapping[str, pa.Table],
    changed: Mapping[str, pa.Table],
    own: str,
    other: str,
    foreign_key: str,
) -> pa.Table:
    """A dimension of ``own`` joined to ``other``, for every key whose values may have changed:
    its own row landed, or the ``other`` row it points at landed."""
    own_rows = state.get(own)
    other_rows = state.get(other)
    if own_rows is None or other_rows is None:
        return warehouse_schema(name).empty_table()
    touched = pc.or_(
        pc.is_in(_ids(own_rows, own), _ids(changed[own], own)),
        pc.is_in(own_rows.column(foreign_key), _ids(changed[other], other)),
    )
    keep = sorted(_JOINED[name])
    joined = _joined(
        own_rows.filter(touched), other_rows, foreign_key, source_table(other).primary_key, keep
    )
    return _build(name, joined.sort_by(source_table(own).primary_key))


def _currency(rows: pa.Table) -> pa.Table:
    names = pa.array(list(CURRENCY_NAMES.values()))
    codes = pa.array(list(CURRENCY_NAMES))
    index = pc.index_in(rows.column("currency_code"), codes)
    return rows.append_column("currency_name", pc.take(names, index))


def _referenced_dates(facts: Mapping[str, pa.Table]) -> pa.ChunkedArray:
    arrays: list[pa.Array] = []
    for name in FACT_SOURCES:
        table = facts[name]
        for field in table.schema:
            if field.type == DATE:
                arrays.extend(table.column(field.name).chunks)
    return pa.chunked_array(arrays, DATE)


def model(batch: Mapping[str, pa.Table], state: Mapping[str, pa.Table]) -> Model:
    """Apply every rule to ``batch`` (landed rows per source table; missing means none) against
    ``state`` (current rows of :data:`STATE_TABLES` before the batch)."""
    new_state = dict(state)
    accepted: dict[str, pa.Table] = {}
    quarantine: dict[str, pa.Table] = {}
    for table in LOAD_ORDER:
        rows = _conform(table, batch.get(table))
        reasons = _screen(table, rows, new_state)
        accepted[table] = rows.filter(reasons.good)
        quarantine[table] = quarantine_records(
            table, rows, reasons, source_table(table).primary_key
        )
        if table in STATE_TABLES and accepted[table].num_rows:
            new_state[table] = upsert(new_state.get(table), accepted[table], table)

    changed = {t: accepted[t] for t in STATE_TABLES}
    tables: dict[str, pa.Table] = {
        "dim_location": _build("dim_location", accepted["address"]),
        "dim_counterparty": _two_sided(
            "dim_counterparty", new_state, changed, "counterparty", "address", "legal_address_id"
        ),
        "dim_staff": _two_sided(
            "dim_staff", new_state, changed, "staff", "department", "department_id"
        ),
        "dim_design": _build("dim_design", accepted["design"]),
        "dim_currency": _build("dim_currency", _currency(accepted["currency"])),
        "dim_payment_type": _build("dim_payment_type", accepted["payment_type"]),
        "dim_transaction": _build("dim_transaction", accepted["transaction"]),
    }
    for name, source in FACT_SOURCES.items():
        tables[name] = _build(name, accepted[source])
    tables["dim_date"] = calendar(_referenced_dates(tables))
    return Model(
        tables={name: tables[name] for name in WAREHOUSE_TABLES},
        accepted=accepted,
        quarantine=quarantine,
        state=new_state,
        changed_state=frozenset(t for t in STATE_TABLES if accepted[t].num_rows),
    )


def full_model(source: Mapping[str, pa.Table]) -> dict[str, pa.Table]:
    """All 11 warehouse tables from the current full rows of the 11 source tables.

    Facts have one row per source row (no ``*_record_id``, no load metadata); dimensions one row
    per source key; dim_date every referenced date and the years they touch. Rows that break a
    rule are left out exactly as the batch transform quarantines them (see :func:`model`).
    """
    return model(source, {}).tables

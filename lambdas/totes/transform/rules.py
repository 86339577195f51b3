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

from totes.contracts.ingestion import source_schema
from totes.contracts.processed import QUARANTINE_SCHEMA
from totes.contracts.warehouse import (
    DATE_PART,
    DIM_DATE,
    DIMENSIONS,
    FACTS,
    TABLES,
    TEXT_DATE,
    TIME_PART,
)
from totes.contracts.warehouse import LOAD_ORDER as WAREHOUSE_ORDER
from totes.errors import TransformError
from totes.keys import KeySet, ascending, is_known, repeats_a_key
from totes.tables import LOAD_ORDER, source_table
from totes.transform.dates import DATE, calendar, parse_text_dates, split_timestamp
from totes.transform.quarantine import Reasons, quarantine_records

CURRENCY_NAMES: dict[str, str] = {"GBP": "Pound Sterling", "USD": "US Dollar", "EUR": "Euro"}

# Everything below is read off the warehouse contract, where each table is declared once.
WAREHOUSE_TABLES: tuple[str, ...] = tuple(t.name for t in WAREHOUSE_ORDER)
FACT_SOURCES: dict[str, str] = {t.name: str(t.source) for t in FACTS}
_SOURCED = tuple(t for t in WAREHOUSE_ORDER if t.source is not None)

# Source tables whose current rows a dimension or a reference check needs.
STATE_TABLES: tuple[str, ...] = tuple(
    name
    for name in LOAD_ORDER
    if any(t.source == name or (t.join and t.join.table == name) for t in DIMENSIONS)
)
_JOINED = frozenset(name for t in DIMENSIONS if t.join for name in (t.source, t.join.table))

# State tables no two-sided dimension joins: a rule reads only their keys (references) once
# their rows are accepted, so their state is the key and ``last_updated`` (which a replay
# compares), not the whole row, and their dimension is built from each row alone, so their rows
# can be screened and built a slice at a time like a fact's (transaction grows like the facts).
KEY_STATE_TABLES: tuple[str, ...] = tuple(t for t in STATE_TABLES if t not in _JOINED)
SLICED_DIMENSIONS: dict[str, str] = {
    t.name: str(t.source) for t in DIMENSIONS if t.source in KEY_STATE_TABLES
}


def _references(table: str) -> tuple[tuple[str, str], ...]:
    """(column, referenced source table): the id must exist in the batch or the current state."""
    found: list[tuple[str, str]] = []
    for spec in _SOURCED:
        if spec.source != table:
            continue
        if spec.join is not None:
            found.append((spec.join.foreign_key, spec.join.table))
        for column in spec.columns:
            target = column.references
            if target and target != DIM_DATE.name and column.source:
                found.append((column.source, str(TABLES[target].source)))
    return tuple(dict.fromkeys(found))


def _text_dates(table: str) -> tuple[str, ...]:
    return tuple(
        str(c.source)
        for spec in _SOURCED
        if spec.source == table
        for c in spec.columns
        if c.build == TEXT_DATE
    )


def _required_columns(table: str) -> tuple[str, ...]:
    """Source columns a NOT NULL warehouse column is built from, plus the keys joins follow."""
    required: list[str] = [source_table(table).primary_key]
    for spec in _SOURCED:
        if spec.source == table:
            required += [
                str(c.source) for c in spec.columns if c.source and not c.nullable and not c.joined
            ]
            if spec.join is not None:
                required.append(spec.join.foreign_key)
        if spec.join is not None and spec.join.table == table:
            required += [str(c.source) for c in spec.columns if c.joined and not c.nullable]
    return tuple(dict.fromkeys(required))


REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    name: refs for name in LOAD_ORDER if (refs := _references(name))
}
TEXT_DATES: dict[str, tuple[str, ...]] = {
    name: dates for name in LOAD_ORDER if (dates := _text_dates(name))
}
REQUIRED: dict[str, tuple[str, ...]] = {name: _required_columns(name) for name in LOAD_ORDER}


def warehouse_schema(name: str) -> pa.Schema:
    """The exact Arrow schema of a warehouse table's data columns."""
    return TABLES[name].data_schema


def state_schema(table: str) -> pa.Schema:
    """The columns of a source table the transform keeps as its current state."""
    schema = source_schema(table)
    if table not in KEY_STATE_TABLES:
        return schema
    return pa.schema([schema.field(source_table(table).primary_key), schema.field("last_updated")])


@dataclass(frozen=True)
class Model:
    """What one batch becomes.

    ``tables``: the 11 warehouse tables (facts without the load metadata);
    ``accepted``: per source table the batch rows that passed, in landed order, with any extra
    landed columns (the facts' ``tables`` rows line up with these one to one);
    ``quarantine``: per source table the rejected rows; ``state``: the current source rows after
    the batch (:func:`state_schema`) of the state tables given as rows or changed;
    ``known``: the keys of every state table after the batch, for the references of rows
    screened later; ``changed_state``: the state tables this batch changed.
    """

    tables: dict[str, pa.Table]
    accepted: dict[str, pa.Table]
    quarantine: dict[str, pa.Table]
    state: dict[str, pa.Table]
    known: dict[str, KeySet]
    changed_state: frozenset[str]


def _conform(table: str, rows: pa.Table | None) -> pa.Table:
    """Check the landed columns against the contract; keep extra columns for the record."""
    if rows is None:
        return source_schema(table).empty_table()
    for column in source_table(table).columns:
        if column.name not in rows.column_names:
            raise TransformError(f"landed rows lack column {column.name}", table=table)
        actual = rows.schema.field(column.name).type
        if actual != column.arrow_type:
            raise TransformError(
                f"column {column.name} is {actual}, the landing contract says {column.arrow_type}",
                table=table,
            )
    if repeats_a_key(rows.column(source_table(table).primary_key)):
        raise TransformError("a primary key appears twice in one batch", table=table)
    return rows


def upsert(current: pa.Table | None, rows: pa.Table, table: str) -> pa.Table:
    """The state of ``table`` after ``rows`` replace their keys' rows, sorted by key."""
    schema = state_schema(table)
    key = source_table(table).primary_key
    incoming = rows.select(schema.names).cast(schema)
    if current is None:
        merged = incoming
    else:
        kept = current.select(schema.names).cast(schema)
        replaced = is_known(kept.column(key), incoming.column(key))
        if pc.any(replaced).as_py():  # else no filtered copy: new keys alone are the usual
            kept = kept.filter(pc.invert(replaced))
        merged = pa.concat_tables([kept, incoming])
    if not ascending(merged.column(key)):
        merged = merged.sort_by(key)
    # One chunk per column: the key checks read the keys as one array without copying them.
    return merged.combine_chunks()


def _screen(table: str, rows: pa.Table, known: Mapping[str, KeySet]) -> Reasons:
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
        ids = rows.column(column)
        current = known.get(target)
        found = current.contains(ids) if current is not None else pa.repeat(False, len(ids))
        reasons.add(
            pc.and_(pc.is_valid(ids), pc.invert(found)),
            f"{column} refers to a {target} in neither the batch nor the current state",
        )
    return reasons


def _build(name: str, rows: pa.Table) -> pa.Table:
    spec = TABLES[name]
    schema = spec.data_schema
    columns: list[pa.Array | pa.ChunkedArray] = []
    for column in spec.columns:
        # A derived column is computed onto ``rows`` beforehand, under its own name.
        values = rows.column(column.source or column.name)
        if column.build == DATE_PART:
            values = split_timestamp(values)[0]
        elif column.build == TIME_PART:
            values = split_timestamp(values)[1]
        elif column.build == TEXT_DATE:
            values = parse_text_dates(values)[0]
        columns.append(pc.cast(values, schema.field(column.name).type))
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
    name: str, state: Mapping[str, pa.Table], changed: Mapping[str, pa.Table]
) -> pa.Table:
    """A dimension of its own source table joined to its join's table, for every key whose
    values may have changed: its own row landed, or the row it points at landed."""
    spec = TABLES[name]
    assert spec.source is not None
    assert spec.join is not None
    own, other, foreign_key = spec.source, spec.join.table, spec.join.foreign_key
    own_rows = state.get(own)
    other_rows = state.get(other)
    if own_rows is None or other_rows is None:
        return warehouse_schema(name).empty_table()
    touched = pc.or_(
        pc.is_in(_ids(own_rows, own), _ids(changed[own], own)),
        pc.is_in(own_rows.column(foreign_key), _ids(changed[other], other)),
    )
    keep = sorted({str(c.source) for c in spec.columns if c.joined})
    joined = _joined(
        own_rows.filter(touched), other_rows, foreign_key, source_table(other).primary_key, keep
    )
    return _build(name, joined.sort_by(source_table(own).primary_key))


def _currency(rows: pa.Table) -> pa.Table:
    names = pa.array(list(CURRENCY_NAMES.values()))
    codes = pa.array(list(CURRENCY_NAMES))
    index = pc.index_in(rows.column("currency_code"), codes)
    return rows.append_column("currency_name", pc.take(names, index))


def referenced_dates(facts: Mapping[str, pa.Table]) -> pa.ChunkedArray:
    """Every date column value of the given fact tables (dim_date needs their years)."""
    arrays: list[pa.Array] = []
    for name in FACT_SOURCES:
        table = facts.get(name)
        if table is None:
            continue
        for field in table.schema:
            if field.type == DATE:
                arrays.extend(table.column(field.name).chunks)
    return pa.chunked_array(arrays, DATE)


@dataclass(frozen=True)
class Screened:
    """One source table's landed rows split by the rules: ``accepted`` rows in landed order,
    ``quarantine`` records of the others."""

    accepted: pa.Table
    quarantine: pa.Table


def screen(table: str, rows: pa.Table | None, known: Mapping[str, KeySet]) -> Screened:
    """Check ``rows`` of ``table`` against the contract and every rule, references resolved
    against ``known`` (the keys of the state tables). A fact's rows may come a slice at a time:
    each row's verdict depends on the row and the state's keys only."""
    rows = _conform(table, rows)
    reasons = _screen(table, rows, known)
    if not reasons.any_bad:
        # Nearly every batch: the rows themselves are the accepted rows, not a filtered copy.
        return Screened(rows, QUARANTINE_SCHEMA.empty_table())
    return Screened(
        rows.filter(reasons.good),
        quarantine_records(table, rows, reasons, source_table(table).primary_key),
    )


def dimension_rows(name: str, accepted: pa.Table) -> pa.Table:
    """The rows of a dimension built from its own source table alone (not a two-sided one)
    for that table's accepted rows."""
    if name == "dim_currency":
        accepted = _currency(accepted)
    return _build(name, accepted)


def fact_rows(name: str, accepted: pa.Table) -> pa.Table:
    """The warehouse rows of fact ``name`` for its source's accepted rows (without metadata)."""
    return _build(name, accepted)


def _keys(table: str, state: pa.Table) -> KeySet:
    return KeySet.of(state.column(source_table(table).primary_key))


def model(
    batch: Mapping[str, pa.Table],
    state: Mapping[str, pa.Table],
    known: Mapping[str, KeySet] | None = None,
) -> Model:
    """Apply every rule to ``batch`` (landed rows per source table; missing means none) against
    ``state`` (current rows of :data:`STATE_TABLES` before the batch). A state table whose rows
    are not given may be given by its keys in ``known``: references to it resolve, and rows of
    it in ``batch`` add to its keys and are, alone, its ``state`` after the batch."""
    new_state = dict(state)
    keys = dict(known or {})
    keys.update({table: _keys(table, rows) for table, rows in state.items()})
    accepted: dict[str, pa.Table] = {}
    quarantine: dict[str, pa.Table] = {}
    for table in LOAD_ORDER:
        screened = screen(table, batch.get(table), keys)
        accepted[table], quarantine[table] = screened.accepted, screened.quarantine
        if table in STATE_TABLES and accepted[table].num_rows:
            new_state[table] = upsert(new_state.get(table), accepted[table], table)
            # A table known only by its keys keeps them: its state here holds the batch's rows.
            keys[table] = KeySet.union(keys.get(table), _keys(table, new_state[table]))

    changed = {t: accepted[t] for t in STATE_TABLES}
    tables: dict[str, pa.Table] = {
        "dim_location": dimension_rows("dim_location", accepted["address"]),
        "dim_counterparty": _two_sided("dim_counterparty", new_state, changed),
        "dim_staff": _two_sided("dim_staff", new_state, changed),
    }
    for name, source in SLICED_DIMENSIONS.items():
        tables[name] = dimension_rows(name, accepted[source])
    for name, source in FACT_SOURCES.items():
        tables[name] = fact_rows(name, accepted[source])
    tables["dim_date"] = calendar(referenced_dates(tables))
    return Model(
        tables={name: tables[name] for name in WAREHOUSE_TABLES},
        accepted=accepted,
        quarantine=quarantine,
        state=new_state,
        known=keys,
        changed_state=frozenset(t for t in STATE_TABLES if accepted[t].num_rows),
    )


def full_model(source: Mapping[str, pa.Table]) -> dict[str, pa.Table]:
    """All 11 warehouse tables from the current full rows of the 11 source tables.

    Facts have one row per source row (no ``*_record_id``, no load metadata); dimensions one row
    per source key; dim_date every referenced date and the years they touch. Rows that break a
    rule are left out exactly as the batch transform quarantines them (see :func:`model`).
    """
    return model(source, {}).tables

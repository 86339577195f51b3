"""Compare the warehouse with what the transform rules make of the source (pure: no I/O).

``totes check`` feeds this module Arrow tables: the model built from the source's current rows
and the warehouse's dimensions and ``*_current`` fact views. Record ids and load metadata are not
compared: they describe how a version arrived, not what the source holds.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from totes.contracts.warehouse import FACTS, WarehouseTable
from totes.load.merge import ident

SAMPLE = 5


@dataclass
class TableDiff:
    table: str
    expected_rows: int
    actual_rows: int
    missing: list[str] = field(default_factory=list)  # keys the warehouse lacks
    extra: list[str] = field(default_factory=list)  # keys the source does not have
    changed: list[str] = field(default_factory=list)  # "key: column expected != actual"
    missing_count: int = 0
    extra_count: int = 0
    changed_count: int = 0
    retained_count: int = 0  # rows kept for keys the source no longer has, as the rules say
    held_back_count: int = 0  # keys whose current source row is quarantined: last valid kept

    @property
    def ok(self) -> bool:
        return not (self.missing_count or self.extra_count or self.changed_count)


@dataclass
class CheckReport:
    tables: list[TableDiff]
    problems: list[str] = field(default_factory=list)  # duplicates, unresolved references

    @property
    def ok(self) -> bool:
        return not self.problems and all(t.ok for t in self.tables)


def _keyed(table: pa.Table, key: str, columns: list[str]) -> dict[Any, tuple[Any, ...]]:
    rows = table.select(columns).to_pylist()
    return {row[key]: tuple(row[c] for c in columns) for row in rows}


def compare_table(
    spec: WarehouseTable,
    expected: pa.Table,
    actual: pa.Table,
    *,
    allow_extra: bool = False,
    held_back: Collection[Any] = (),
    sample: int = SAMPLE,
) -> TableDiff:
    """Row-by-key comparison of the course columns; ``allow_extra`` for tables that legitimately
    keep rows the current source no longer implies: dim_date keeps every date once referenced,
    and a dimension keeps the last captured row of a key deleted at the source, because fact
    history refers to it. Such rows are counted as retained, not as differences. Keys in
    ``held_back`` (their current source row is quarantined) may hold their last valid row."""
    columns = spec.column_names
    schema = pa.schema([(c.name, c.arrow_type) for c in spec.columns])
    want = _keyed(expected.select(columns).cast(schema), spec.key, columns)
    have = _keyed(actual.select(columns).cast(schema), spec.key, columns)
    diff = TableDiff(spec.name, len(want), len(have))
    for key in sorted(want.keys() - have.keys()):
        diff.missing_count += 1
        if len(diff.missing) < sample:
            diff.missing.append(f"{spec.key}={key}")
    for key in sorted(have.keys() - want.keys()):
        if key in held_back:
            diff.held_back_count += 1
            continue
        if allow_extra:
            diff.retained_count += 1
            continue
        diff.extra_count += 1
        if len(diff.extra) < sample:
            diff.extra.append(f"{spec.key}={key}")
    for key in sorted(want.keys() & have.keys()):
        if want[key] == have[key]:
            continue
        diff.changed_count += 1
        if len(diff.changed) < sample:
            columns_differing = [
                f"{name} source {w!r} != warehouse {h!r}"
                for name, w, h in zip(columns, want[key], have[key], strict=True)
                if w != h
            ]
            diff.changed.append(f"{spec.key}={key}: " + "; ".join(columns_differing))
    return diff


def format_report(report: CheckReport) -> str:
    if report.ok:
        compared = ", ".join(f"{t.table} {t.actual_rows}" for t in report.tables)
        retained = ", ".join(
            f"{t.table} {t.retained_count}"
            for t in report.tables
            if t.retained_count and t.table != "dim_date"
        )
        kept = f"; kept for keys the source deleted: {retained}" if retained else ""
        held = ", ".join(
            f"{t.table} {t.held_back_count}" for t in report.tables if t.held_back_count
        )
        held_back = f"; last valid version kept for quarantined rows: {held}" if held else ""
        return f"warehouse matches the source ({compared}){kept}{held_back}"
    lines = ["warehouse differs from the source:"]
    for diff in report.tables:
        if diff.ok:
            continue
        lines.append(
            f"  {diff.table}: {diff.missing_count} missing, {diff.extra_count} extra, "
            f"{diff.changed_count} changed (source {diff.expected_rows} rows, "
            f"warehouse {diff.actual_rows})"
        )
        lines.extend(f"    missing {k}" for k in diff.missing)
        lines.extend(f"    extra {k}" for k in diff.extra)
        lines.extend(f"    changed {k}" for k in diff.changed)
    lines.extend(f"  {p}" for p in report.problems)
    return "\n".join(lines)


def duplicate_versions_sql(fact: WarehouseTable) -> str:
    """Natural ids with a version recorded twice in a row: identical in every course column and
    the deletion flag to the version just before it. (A version may come back later, after
    another one: A -> B -> A is three observations.)"""
    assert fact.record_id is not None
    row = "ROW(" + ", ".join(ident(c) for c in [*fact.column_names, "is_deleted"]) + ")"
    key = ident(fact.key)
    return (
        f"SELECT {key}, count(*) FROM (SELECT {key}, {row} IS NOT DISTINCT FROM "
        f"lag({row}) OVER (PARTITION BY {key} ORDER BY {ident(fact.record_id)}) AS repeated "
        f"FROM {ident(fact.name)}) AS versions WHERE repeated "
        f"GROUP BY {key} ORDER BY 1 LIMIT {SAMPLE}"
    )


def unresolved_references_sql(fact: WarehouseTable, dimension_keys: Mapping[str, str]) -> str:
    """One row per (column, count, example) of fact references without their dimension row."""
    parts = []
    for column, dimension in fact.references.items():
        key = ident(dimension_keys[dimension])
        parts.append(
            f"SELECT '{column}' AS col, count(*) AS n, min(f.{ident(column)})::text AS example "
            f"FROM {ident(fact.name)} AS f WHERE NOT EXISTS (SELECT 1 FROM {ident(dimension)} "
            f"AS d WHERE d.{key} = f.{ident(column)})"
        )
    return " UNION ALL ".join(parts)


def reference_problems(fact: str, rows: Iterable[tuple[Any, ...]]) -> list[str]:
    return [
        f"{fact}.{column}: {n} reference(s) without a dimension row, e.g. {example}"
        for column, n, example in rows
        if n
    ]


def duplicate_problems(fact: str, rows: Iterable[tuple[Any, ...]]) -> list[str]:
    return [
        f"{fact}: id {key} has a version recorded twice in a row ({n} time(s))" for key, n in rows
    ]


FACT_NAMES = tuple(f.name for f in FACTS)


def record_gaps_sql(fact: WarehouseTable) -> str:
    """Record ids are assigned without gaps, so a hole means a fact version was removed."""
    assert fact.record_id is not None
    return f"SELECT count(*), coalesce(max({ident(fact.record_id)}), 0) FROM {ident(fact.name)}"


def gap_problems(fact: str, count: int, top: int) -> list[str]:
    if count == top:
        return []
    return [f"{fact}: {top - count} fact version(s) missing (record ids 1..{top}, {count} rows)"]

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa

from totes.check.reconcile import CheckReport, compare_table, format_report, gap_problems
from totes.contracts.warehouse import TABLES

CURRENCY = TABLES["dim_currency"]


def _currencies(*rows: tuple[int, str, str]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"currency_id": i, "currency_code": c, "currency_name": n} for i, c, n in rows],
        schema=CURRENCY.arrow_schema,
    )


def test_identical_tables_match_whatever_the_row_order() -> None:
    expected = _currencies((1, "GBP", "Pound Sterling"), (2, "USD", "US Dollar"))
    actual = _currencies((2, "USD", "US Dollar"), (1, "GBP", "Pound Sterling"))
    diff = compare_table(CURRENCY, expected, actual)
    assert diff.ok
    assert format_report(CheckReport([diff])).startswith("warehouse matches the source")


def test_missing_extra_and_changed_rows_are_reported_with_keys_and_values() -> None:
    expected = _currencies((1, "GBP", "Pound Sterling"), (2, "USD", "US Dollar"))
    actual = _currencies((1, "GBP", "Sterling"), (3, "EUR", "Euro"))
    diff = compare_table(CURRENCY, expected, actual)
    assert (diff.missing, diff.extra) == (["currency_id=2"], ["currency_id=3"])
    assert diff.changed == [
        "currency_id=1: currency_name source 'Pound Sterling' != warehouse 'Sterling'"
    ]
    report = format_report(CheckReport([diff]))
    assert report.splitlines()[:2] == [
        "warehouse differs from the source:",
        "  dim_currency: 1 missing, 1 extra, 1 changed (source 2 rows, warehouse 2)",
    ]


def test_extra_rows_may_be_allowed_and_samples_are_capped() -> None:
    expected = _currencies(*[(i, "GBP", "x") for i in range(1, 3)])
    actual = _currencies(*[(i, "GBP", "y") for i in range(1, 13)])
    diff = compare_table(CURRENCY, expected, actual, allow_extra=True, sample=1)
    assert diff.extra_count == 0
    assert diff.retained_count == 10  # rows of keys the source deleted: kept, and counted
    assert diff.changed_count == 2
    assert len(diff.changed) == 1


def test_a_consistent_report_names_the_rows_kept_for_deleted_keys() -> None:
    expected = _currencies((1, "GBP", "x"))
    actual = _currencies((1, "GBP", "x"), (2, "EUR", "y"))
    report = CheckReport([compare_table(CURRENCY, expected, actual, allow_extra=True)])
    assert report.ok
    assert format_report(report).endswith("; kept for keys the source deleted: dim_currency 1")


def test_fact_values_compare_as_exact_decimals() -> None:
    fact = TABLES["fact_payment"]
    row: dict[str, object] = {c.name: None for c in fact.columns}
    row.update(payment_id=1, payment_amount=Decimal("10.10"))
    other = dict(row, payment_amount=Decimal("10.1"))
    expected = pa.Table.from_pylist([row], schema=fact.arrow_schema.remove_metadata())
    assert compare_table(fact, expected, pa.Table.from_pylist([other])).ok


def test_a_hole_in_record_ids_is_a_problem() -> None:
    assert gap_problems("fact_payment", 10, 10) == []
    assert gap_problems("fact_payment", 9, 10) == [
        "fact_payment: 1 fact version(s) missing (record ids 1..10, 9 rows)"
    ]

"""The warehouse invariants the DAG checks after every load, as checks for the common-sql
provider's ``SQLTableCheckOperator``.

The table, key and reference names mirror ``totes.contracts.warehouse`` (a test keeps the two
equal). They are repeated here because the contracts module imports pyarrow, which MWAA's image
does not install, and the Airflow side must not depend on the ETL's libraries. Every identifier
comes from these declarations, is checked against a strict pattern and is double-quoted; no value
from outside the module reaches the SQL.

Each check is one scalar condition over a one-row relation, so an empty warehouse (before the
first load) passes instead of failing on an aggregate over no rows, and a condition is an
anti-join or a grouped count that stops at the first offending row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The relation every check statement is evaluated over (the operator's ``table``).
ONE_ROW = "(SELECT 1) AS one_row"

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier, or ValueError for anything but a plain lower-case
    name (the only kind the warehouse schema uses)."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not an allowed warehouse identifier: {name!r}")
    return f'"{name}"'


@dataclass(frozen=True)
class Dimension:
    name: str
    key: str


@dataclass(frozen=True)
class Fact:
    name: str
    key: str  # the natural (source) id
    record_id: str
    columns: tuple[str, ...]  # the course columns, compared for a repeated version
    references: tuple[tuple[str, str], ...]  # (fact column, dimension table)

    @property
    def current_view(self) -> str:
        return f"{self.name}_current"


_STAMPS = ("created_date", "created_time", "last_updated_date", "last_updated_time")
_DATE_REFERENCES = (("created_date", "dim_date"), ("last_updated_date", "dim_date"))

DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("dim_date", "date_id"),
    Dimension("dim_staff", "staff_id"),
    Dimension("dim_location", "location_id"),
    Dimension("dim_design", "design_id"),
    Dimension("dim_currency", "currency_id"),
    Dimension("dim_counterparty", "counterparty_id"),
    Dimension("dim_payment_type", "payment_type_id"),
    Dimension("dim_transaction", "transaction_id"),
)

FACTS: tuple[Fact, ...] = (
    Fact(
        "fact_sales_order",
        "sales_order_id",
        "sales_record_id",
        (
            "sales_order_id",
            *_STAMPS,
            "sales_staff_id",
            "counterparty_id",
            "units_sold",
            "unit_price",
            "currency_id",
            "design_id",
            "agreed_payment_date",
            "agreed_delivery_date",
            "agreed_delivery_location_id",
        ),
        (
            *_DATE_REFERENCES,
            ("sales_staff_id", "dim_staff"),
            ("counterparty_id", "dim_counterparty"),
            ("currency_id", "dim_currency"),
            ("design_id", "dim_design"),
            ("agreed_payment_date", "dim_date"),
            ("agreed_delivery_date", "dim_date"),
            ("agreed_delivery_location_id", "dim_location"),
        ),
    ),
    Fact(
        "fact_purchase_order",
        "purchase_order_id",
        "purchase_record_id",
        (
            "purchase_order_id",
            *_STAMPS,
            "staff_id",
            "counterparty_id",
            "item_code",
            "item_quantity",
            "item_unit_price",
            "currency_id",
            "agreed_delivery_date",
            "agreed_payment_date",
            "agreed_delivery_location_id",
        ),
        (
            *_DATE_REFERENCES,
            ("staff_id", "dim_staff"),
            ("counterparty_id", "dim_counterparty"),
            ("currency_id", "dim_currency"),
            ("agreed_delivery_date", "dim_date"),
            ("agreed_payment_date", "dim_date"),
            ("agreed_delivery_location_id", "dim_location"),
        ),
    ),
    Fact(
        "fact_payment",
        "payment_id",
        "payment_record_id",
        (
            "payment_id",
            *_STAMPS,
            "transaction_id",
            "counterparty_id",
            "payment_amount",
            "currency_id",
            "payment_type_id",
            "paid",
            "payment_date",
        ),
        (
            *_DATE_REFERENCES,
            ("transaction_id", "dim_transaction"),
            ("counterparty_id", "dim_counterparty"),
            ("currency_id", "dim_currency"),
            ("payment_type_id", "dim_payment_type"),
            ("payment_date", "dim_date"),
        ),
    ),
)

DIMENSION_KEYS: dict[str, str] = {d.name: d.key for d in DIMENSIONS}

Checks = dict[str, dict[str, str]]


def _check(statement: str) -> dict[str, str]:
    return {"check_statement": statement}


def dimension_key_checks(dimensions: tuple[Dimension, ...] = DIMENSIONS) -> Checks:
    """Every dimension key is present and unique: the facts join on it."""
    checks: Checks = {}
    for dim in dimensions:
        key, table = ident(dim.key), ident(dim.name)
        checks[f"{dim.name}_key_not_null"] = _check(
            f"NOT EXISTS (SELECT 1 FROM {table} WHERE {key} IS NULL)"
        )
        checks[f"{dim.name}_key_unique"] = _check(
            f"NOT EXISTS (SELECT 1 FROM {table} GROUP BY {key} HAVING count(*) > 1)"
        )
    return checks


def fact_reference_checks(facts: tuple[Fact, ...] = FACTS) -> Checks:
    """Every fact reference has its dimension row (the load drops and re-adds the foreign keys
    when it fills an empty table, so the constraint alone is not the whole guarantee)."""
    checks: Checks = {}
    for fact in facts:
        for column, dimension in fact.references:
            checks[f"{fact.name}_{column}_resolves"] = _check(
                f"NOT EXISTS (SELECT 1 FROM {ident(fact.name)} AS f WHERE NOT EXISTS "
                f"(SELECT 1 FROM {ident(dimension)} AS d "
                f"WHERE d.{ident(DIMENSION_KEYS[dimension])} = f.{ident(column)}))"
            )
    return checks


def current_view_checks(facts: tuple[Fact, ...] = FACTS) -> Checks:
    """Each ``*_current`` view holds at most one row per natural id: what reports read as the
    present state of an order or payment."""
    return {
        f"{fact.current_view}_one_per_key": _check(
            f"NOT EXISTS (SELECT 1 FROM {ident(fact.current_view)} "
            f"GROUP BY {ident(fact.key)} HAVING count(*) > 1)"
        )
        for fact in facts
    }


def fact_version_checks(facts: tuple[Fact, ...] = FACTS) -> Checks:
    """No fact version recorded twice in a row: a version identical, in every course column and
    the deletion flag, to the one just before it of the same id means a batch was loaded twice.
    (A version may come back after another one: A -> B -> A is three observed changes.)"""
    checks: Checks = {}
    for fact in facts:
        row = "ROW(" + ", ".join(ident(c) for c in (*fact.columns, "is_deleted")) + ")"
        key = ident(fact.key)
        checks[f"{fact.name}_no_version_twice"] = _check(
            f"NOT EXISTS (SELECT 1 FROM (SELECT {row} IS NOT DISTINCT FROM lag({row}) OVER "
            f"(PARTITION BY {key} ORDER BY {ident(fact.record_id)}) AS repeated "
            f"FROM {ident(fact.name)}) AS versions WHERE repeated)"
        )
    return checks


# The check tasks the DAG runs, each a SQLTableCheckOperator over ONE_ROW.
CHECK_GROUPS: dict[str, Checks] = {
    "dimension_keys": dimension_key_checks(),
    "fact_references": fact_reference_checks(),
    "current_views": current_view_checks(),
    "fact_versions": fact_version_checks(),
}

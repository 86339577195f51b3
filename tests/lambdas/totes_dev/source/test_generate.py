"""The generator against the real 2024-11-15 snapshot: volume, patterns, invariants, determinism."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from totes.cli import main
from totes.settings import DbSettings
from totes_dev.errors import DevSourceError
from totes_dev.source.generate import generate
from totes_dev.source.schema import fingerprints, row_counts

STATIC_SIZES = {
    "address": 30, "counterparty": 20, "currency": 3, "department": 8, "staff": 20,
    "payment_type": 4,
}  # fmt: skip


def _one(db: DbSettings, query: str) -> Any:
    with psycopg.connect(**db.conninfo()) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def _all(db: DbSettings, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(**db.conninfo()) as conn:
        return conn.execute(query).fetchall()


def _counts(db: DbSettings) -> dict[str, int]:
    with psycopg.connect(**db.conninfo()) as conn:
        return row_counts(conn)


def _close(generated: float, real: float) -> bool:
    return abs(generated - real) <= 0.10 * real


def test_scale_one_matches_the_real_volume(
    source_generated: DbSettings, source_nov: DbSettings
) -> None:
    generated, real = _counts(source_generated), _counts(source_nov)
    assert {name: generated[name] for name in STATIC_SIZES} == STATIC_SIZES
    off = {name: (generated[name], real[name]) for name in real}
    assert all(_close(g, r) for g, r in off.values()), off
    assert generated["transaction"] == generated["payment"]
    assert generated["transaction"] == generated["sales_order"] + generated["purchase_order"]


def test_scale_one_matches_the_real_paid_share_and_weekday_sales(
    source_generated: DbSettings, source_nov: DbSettings
) -> None:
    paid = "SELECT avg(paid::int)::float FROM payment"
    assert _close(_one(source_generated, paid), _one(source_nov, paid))
    per_weekday = (
        "SELECT extract(isodow FROM created_at)::int, count(*) FROM sales_order "
        "WHERE created_at >= '2022-11-04' GROUP BY 1 ORDER BY 1"
    )
    generated = {int(d): int(n) for d, n in _all(source_generated, per_weekday)}
    real = {int(d): int(n) for d, n in _all(source_nov, per_weekday)}
    assert set(generated) == set(real) == {1, 2, 3, 4, 5}
    assert all(_close(generated[d], real[d]) for d in real), (generated, real)
    hours = "SELECT min(extract(hour FROM created_at)), max(extract(hour FROM created_at)) FROM {}"
    for table in ("sales_order", "purchase_order", "design", "payment"):
        start, end = _all(
            source_generated, hours.format(table) + " WHERE created_at >= '2022-11-04'"
        )[0]
        assert (start, end) == (8, 18)


def test_generated_rows_keep_the_real_invariants(source_generated: DbSettings) -> None:
    checks = {
        # each order, its transaction and its payment share one created_at and the order's values
        "sale triples": """
            SELECT count(*) FROM sales_order s
            JOIN "transaction" t ON t.sales_order_id = s.sales_order_id
            JOIN payment p ON p.transaction_id = t.transaction_id
            WHERE t.transaction_type <> 'SALE' OR p.payment_type_id <> 1
               OR t.created_at <> s.created_at OR p.created_at <> s.created_at
               OR p.payment_amount <> s.units_sold * s.unit_price
               OR p.counterparty_id <> s.counterparty_id OR p.currency_id <> s.currency_id
               OR p.payment_date <> s.agreed_payment_date""",
        "purchase triples": """
            SELECT count(*) FROM purchase_order o
            JOIN "transaction" t ON t.purchase_order_id = o.purchase_order_id
            JOIN payment p ON p.transaction_id = t.transaction_id
            WHERE t.transaction_type <> 'PURCHASE' OR p.payment_type_id <> 3
               OR t.created_at <> o.created_at OR p.created_at <> o.created_at
               OR p.payment_amount <> o.item_quantity * o.item_unit_price
               OR p.payment_date <> o.agreed_payment_date""",
        "orphan transactions": """
            SELECT count(*) FROM "transaction"
            WHERE num_nonnulls(sales_order_id, purchase_order_id) <> 1""",
        # paid flips at 07:55:10-07:55:12 on a weekday payment_date later than the creation date,
        # up to the last generated day
        "paid rule": """
            SELECT count(*) FROM payment WHERE paid <> (
                extract(isodow FROM payment_date::date) < 6
                AND payment_date::date > created_at::date
                AND payment_date <= '2024-11-15')""",
        "paid time": """
            SELECT count(*) FROM payment
            WHERE paid AND (last_updated::date <> payment_date::date
                OR last_updated::time NOT BETWEEN '07:55:10' AND '07:55:12')""",
        "unpaid untouched": """
            SELECT count(*) FROM payment WHERE NOT paid AND last_updated <> created_at""",
        "orders untouched": """
            SELECT (SELECT count(*) FROM sales_order WHERE last_updated <> created_at)
                 + (SELECT count(*) FROM purchase_order WHERE last_updated <> created_at)
                 + (SELECT count(*) FROM design WHERE last_updated <> created_at)""",
        "weekends": """
            SELECT count(*) FROM sales_order WHERE extract(isodow FROM created_at) > 5""",
        "ranges": """
            SELECT count(*) FROM sales_order s JOIN purchase_order o ON o.purchase_order_id = 1
            WHERE s.units_sold NOT BETWEEN 1001 AND 99973 OR s.unit_price NOT BETWEEN 2 AND 4
               OR s.agreed_payment_date::date - s.created_at::date NOT BETWEEN 0 AND 6
               OR s.agreed_delivery_date::date - s.created_at::date NOT BETWEEN 0 AND 7""",
        "purchase ranges": """
            SELECT count(*) FROM purchase_order
            WHERE item_quantity NOT BETWEEN 1 AND 999
               OR item_unit_price NOT BETWEEN 3.32 AND 999.07 OR item_code !~ '^[A-Z0-9]{7}$'""",
        "one flip time per day": """
            SELECT count(*) FROM (SELECT payment_date FROM payment WHERE paid
                                  GROUP BY 1 HAVING count(DISTINCT last_updated) > 1) d""",
    }
    broken = {name: _one(source_generated, query) for name, query in checks.items()}
    assert broken == dict.fromkeys(checks, 0)
    newest = _one(source_generated, "SELECT max(created_at)::text FROM sales_order")
    assert str(newest) <= "2024-11-15 14:40:10.188"


def test_same_seed_same_data_other_seed_other_data(
    source_empty: DbSettings, source_feb: DbSettings, pg_admin: DbSettings
) -> None:
    from psycopg import sql

    names = [f"{source_empty.database}_{i}" for i in (1, 2)]
    with psycopg.connect(**pg_admin.conninfo(), autocommit=True) as conn:
        for name in names:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(source_empty.database)
                )
            )
    a, b = (DbSettings(pg_admin.host, pg_admin.port, pg_admin.user, pg_admin.password, n)
            for n in names)  # fmt: skip
    counts = generate(source_empty, scale=0.05, seed=7)
    assert generate(a, scale=0.05, seed=7) == counts
    generate(b, scale=0.05, seed=8)
    prints = [fingerprints(psycopg.connect(**db.conninfo())) for db in (source_empty, a, b)]
    assert prints[0] == prints[1]
    assert all(prints[0][t] != prints[2][t] for t in ("sales_order", "payment", "address"))
    assert 400 < counts["sales_order"] < 700  # scale multiplies the volume
    with pytest.raises(DevSourceError, match="already holds rows"):
        generate(source_feb, scale=1, seed=1)


def test_cli_generate_prints_counts(
    source_empty: DbSettings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = source_empty
    for name, value in (("PG_HOST", db.host), ("PG_PORT", str(db.port)), ("PG_USER", db.user),
                        ("PG_PASSWORD", db.password), ("PG_DATABASE", db.database)):  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TOTES_SOURCE_SECRET_ID", raising=False)

    assert main(["source", "generate", "--scale", "0.02", "--seed", "3"]) == 0

    printed = json.loads(capsys.readouterr().out)
    assert printed == _counts(db)
    assert printed["sales_order"] > 0

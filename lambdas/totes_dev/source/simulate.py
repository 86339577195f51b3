"""Apply realistic activity to a loaded totesys database, as if ``minutes`` passed.

The simulated clock starts at the newest created_at/last_updated in the database and ends at
``now = start + minutes``. In one transaction it applies:

* **new orders**: sales and purchases (each an order + transaction + payment triple with one
  created_at) and designs, at the real rates on the window's working minutes (weekdays
  08:00-18:59). At least one sale and one purchase are always inserted, outside working hours if
  the window has none, so every demo run shows new facts;
* **paid flips**: unpaid payments whose weekday payment_date is later than their creation date
  and whose 07:55 flip time falls inside the window become paid, last_updated = that flip time;
* **real updates**: a few unpaid sales get a new units_sold; their payment's amount follows (it is
  always units_sold x unit_price) and both rows get last_updated = now;
* with ``silent_edits``: a few old sales orders, purchase orders and designs are edited in place
  (agreed_delivery_date, staff_id, design_id, item_code, file_location...) keeping last_updated,
  as the real database does;
* with ``deletes``: one unpaid sale is cancelled (its payment, transaction and sales order are
  deleted together, so no foreign key silently rewrites another row) and one design that no sale
  uses, if any, is deleted.

The returned report lists exactly the ids touched, per kind and table (tables without changes are
left out), so downstream tests can assert exact numbers of new fact versions. Every row appears
under one kind only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
from psycopg import sql

from totes.db import connect
from totes.settings import DbSettings
from totes.tables import LOAD_ORDER, source_table
from totes_dev.errors import DevSourceError
from totes_dev.source import synthetic
from totes_dev.source.pgcopy import copy_arrow
from totes_dev.source.schema import reset_sequences

UPDATES_PER_HOUR = 0.25
SILENT_EDITS_PER_HOUR = 0.5

# SQL twin of synthetic.flip_time: 07:55:10 plus (days since 1970-01-01 * 7919) % 2000 ms.
_FLIP_SQL = (
    "(payment_date::date + time '07:55:10' "
    "+ mod((payment_date::date - date '1970-01-01') * 7919, 2000) * interval '1 millisecond')"
)


def simulate(
    db: DbSettings, *, minutes: int, seed: int, silent_edits: bool = False, deletes: bool = False
) -> dict[str, Any]:
    if minutes <= 0:
        raise DevSourceError(f"simulate: minutes must be positive, got {minutes}")
    rng = np.random.default_rng(seed)
    with connect(db, error=DevSourceError, role="source") as conn, conn.transaction():
        start = _newest_timestamp(conn)
        now = start + np.timedelta64(minutes, "m").astype("timedelta64[ms]")
        report: dict[str, dict[str, list[int]]] = {
            "inserted": _insert_orders(conn, rng, start, now),
            "updated": {},
            "silent_edits": {},
            "deleted": {},
        }
        touched = _Touched(report)
        _add(report["updated"], "payment", _flip_payments(conn, start, now))
        _update_sales(conn, rng, report, touched, now, minutes)
        if silent_edits:
            _silent_edits(conn, rng, report, touched, start, minutes)
        if deletes:
            _deletes(conn, rng, report, touched)
        reset_sequences(conn)
    return {
        "now": _iso(now),
        **{
            kind: {t: sorted(ids) for t, ids in tables.items() if ids}
            for kind, tables in report.items()
        },
    }


def _iso(value: np.datetime64) -> str:
    return str(np.datetime_as_string(value.astype("datetime64[ms]"), unit="ms"))


def _to_np(value: datetime) -> np.datetime64:
    return np.datetime64(value, "ms")


class _Touched:
    """Ids already reported, so each row shows up under one kind only."""

    def __init__(self, report: dict[str, dict[str, list[int]]]) -> None:
        self.report = report

    def ids(self, table: str) -> list[int]:
        return [i for kind in self.report.values() for i in kind.get(table, [])]


def _add(section: dict[str, list[int]], table: str, ids: list[int]) -> None:
    if ids:
        section.setdefault(table, []).extend(ids)


def _newest_timestamp(conn: psycopg.Connection) -> np.datetime64:
    parts = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT max(greatest(created_at, last_updated)) AS t FROM {}").format(
            sql.Identifier(name)
        )
        for name in LOAD_ORDER
    )
    row = conn.execute(sql.SQL("SELECT max(t) FROM ({}) x").format(parts)).fetchone()
    if not row or row[0] is None:
        raise DevSourceError("simulate: the database holds no rows (load or generate data first)")
    return _to_np(row[0])


def _cursor(conn: psycopg.Connection) -> synthetic.Cursor:
    cursor = synthetic.Cursor()
    for name in cursor.next_ids:
        table = source_table(name)
        row = conn.execute(
            sql.SQL("SELECT coalesce(max({}), 0) + 1 FROM {}").format(
                sql.Identifier(table.primary_key), sql.Identifier(name)
            )
        ).fetchone()
        cursor.next_ids[name] = int(row[0]) if row else 1
    designs = conn.execute(
        "SELECT design_id, created_at FROM design ORDER BY created_at"
    ).fetchall()
    if not designs:
        raise DevSourceError("simulate: the database has no designs to sell", table="design")
    cursor.design_ids = np.array([d[0] for d in designs], np.int64)
    cursor.design_times = np.array([d[1] for d in designs], "datetime64[ms]")
    return cursor


def _insert_orders(
    conn: psycopg.Connection, rng: np.random.Generator, start: np.datetime64, now: np.datetime64
) -> dict[str, list[int]]:
    cursor = _cursor(conn)
    design_times = synthetic.times_in_window(rng, start, now, synthetic.DESIGNS_PER_WEEKDAY)
    tables = {"design": synthetic.designs(rng, cursor, design_times)}
    sales = synthetic.times_in_window(rng, start, now, synthetic.SALES_PER_WEEKDAY, minimum=1)
    purchases = synthetic.times_in_window(
        rng, start, now, synthetic.PURCHASES_PER_WEEKDAY, minimum=1
    )
    tables.update(synthetic.orders(rng, cursor, sales, purchases, now))
    inserted: dict[str, list[int]] = {}
    for name, rows in tables.items():
        copy_arrow(conn, sql.Identifier(name), rows)
        _add(inserted, name, _ids(rows, name))
    return inserted


def _ids(rows: pa.Table, name: str) -> list[int]:
    return [int(i) for i in rows.column(source_table(name).primary_key).to_pylist()]


def _flip_payments(conn: psycopg.Connection, start: np.datetime64, now: np.datetime64) -> list[int]:
    rows = conn.execute(
        f"UPDATE payment SET paid = true, last_updated = {_FLIP_SQL} "
        "WHERE NOT paid AND extract(isodow FROM payment_date::date) < 6 "
        f"AND payment_date::date > created_at::date AND {_FLIP_SQL} > %s AND {_FLIP_SQL} <= %s "
        "RETURNING payment_id",
        (start.item(), now.item()),
    ).fetchall()
    return [r[0] for r in rows]


def _update_sales(
    conn: psycopg.Connection,
    rng: np.random.Generator,
    report: dict[str, dict[str, list[int]]],
    touched: _Touched,
    now: np.datetime64,
    minutes: int,
) -> None:
    count = int(rng.poisson(UPDATES_PER_HOUR * minutes / 60))
    if not count:
        return
    candidates = conn.execute(
        "SELECT s.sales_order_id, p.payment_id FROM sales_order s "
        'JOIN "transaction" t USING (sales_order_id) JOIN payment p USING (transaction_id) '
        "WHERE NOT p.paid AND s.sales_order_id <> ALL(%s) AND p.payment_id <> ALL(%s) "
        "ORDER BY s.sales_order_id",
        (touched.ids("sales_order"), touched.ids("payment")),
    ).fetchall()
    if not candidates:
        return
    chosen = rng.choice(len(candidates), min(count, len(candidates)), replace=False)
    orders = [candidates[i][0] for i in sorted(chosen)]
    units = rng.integers(1001, 99974, len(orders))
    rows = conn.execute(
        "WITH new AS (SELECT * FROM unnest(%s::int[], %s::int[]) AS n(id, units)) "
        "UPDATE sales_order s SET units_sold = new.units, last_updated = %s "
        "FROM new WHERE s.sales_order_id = new.id AND s.units_sold <> new.units "
        "RETURNING s.sales_order_id",
        (orders, units.tolist(), now.item()),
    ).fetchall()
    changed = [r[0] for r in rows]
    payments = conn.execute(
        "UPDATE payment p SET payment_amount = s.units_sold * s.unit_price, last_updated = %s "
        'FROM "transaction" t JOIN sales_order s USING (sales_order_id) '
        "WHERE p.transaction_id = t.transaction_id AND s.sales_order_id = ANY(%s) "
        "RETURNING p.payment_id",
        (now.item(), changed),
    ).fetchall()
    _add(report["updated"], "sales_order", changed)
    _add(report["updated"], "payment", [r[0] for r in payments])


# Columns the real silent edits touched, with the SQL giving each a new, different value
# (%s is a random integer drawn by the simulator, so the seed fixes the edit).
_SILENT: dict[str, tuple[tuple[str, str], ...]] = {
    "sales_order": (
        ("agreed_delivery_date", "(created_at::date + 18 + %s % 632)::text"),
        ("staff_id", "(staff_id + %s % 19) % 20 + 1"),
        ("agreed_delivery_location_id", "(agreed_delivery_location_id + %s % 29) % 30 + 1"),
        (
            "design_id",
            "(SELECT d.design_id FROM design d WHERE d.design_id <> x.design_id "
            "ORDER BY d.design_id OFFSET %s % (SELECT count(*) - 1 FROM design) LIMIT 1)",
        ),
    ),
    "purchase_order": (
        ("agreed_delivery_date", "(created_at::date + 18 + %s % 632)::text"),
        ("staff_id", "(staff_id + %s % 19) % 20 + 1"),
        ("agreed_delivery_location_id", "(agreed_delivery_location_id + %s % 29) % 30 + 1"),
        ("item_code", "upper(substr(md5(item_code || %s::text), 1, 7))"),
    ),
    "design": (("file_location", "'/srv/edit' || (%s % 1000)::text || file_location"),),
}


def _silent_edits(
    conn: psycopg.Connection,
    rng: np.random.Generator,
    report: dict[str, dict[str, list[int]]],
    touched: _Touched,
    start: np.datetime64,
    minutes: int,
) -> None:
    """A handful of rows edited in place with last_updated left alone (few rows: a plain loop)."""
    for name, edits in _SILENT.items():
        table = source_table(name)
        count = 1 + int(rng.poisson(SILENT_EDITS_PER_HOUR * minutes / 60))
        candidates = [
            r[0]
            for r in conn.execute(
                sql.SQL("SELECT {pk} FROM {t} WHERE {pk} <> ALL(%s) ORDER BY {pk}").format(
                    pk=sql.Identifier(table.primary_key), t=sql.Identifier(name)
                ),
                (touched.ids(name),),
            ).fetchall()
        ]
        if not candidates:
            continue
        chosen = rng.choice(len(candidates), min(count, len(candidates)), replace=False)
        for index in sorted(chosen):
            column, expression = edits[int(rng.integers(0, len(edits)))]
            value = sql.SQL(expression.replace("%s", "{v}")).format(
                v=sql.Literal(int(rng.integers(1, 1_000_000)))
            )
            row = conn.execute(
                sql.SQL(
                    "UPDATE {t} x SET {c} = {value} "
                    "WHERE {pk} = {id} AND {c} IS DISTINCT FROM {value} RETURNING {pk}"
                ).format(
                    t=sql.Identifier(name),
                    c=sql.Identifier(column),
                    value=value,
                    pk=sql.Identifier(table.primary_key),
                    id=sql.Literal(candidates[index]),
                )
            ).fetchone()
            if row:
                _add(report["silent_edits"], name, [row[0]])


def _deletes(
    conn: psycopg.Connection,
    rng: np.random.Generator,
    report: dict[str, dict[str, list[int]]],
    touched: _Touched,
) -> None:
    sales = conn.execute(
        "SELECT s.sales_order_id, t.transaction_id, p.payment_id FROM sales_order s "
        'JOIN "transaction" t USING (sales_order_id) JOIN payment p USING (transaction_id) '
        "WHERE NOT p.paid AND s.sales_order_id <> ALL(%s) AND t.transaction_id <> ALL(%s) "
        "AND p.payment_id <> ALL(%s) ORDER BY s.sales_order_id",
        (touched.ids("sales_order"), touched.ids("transaction"), touched.ids("payment")),
    ).fetchall()
    if sales:
        order, transaction, payment = sales[int(rng.integers(0, len(sales)))]
        conn.execute("DELETE FROM payment WHERE payment_id = %s", (payment,))
        conn.execute('DELETE FROM "transaction" WHERE transaction_id = %s', (transaction,))
        conn.execute("DELETE FROM sales_order WHERE sales_order_id = %s", (order,))
        _add(report["deleted"], "payment", [payment])
        _add(report["deleted"], "transaction", [transaction])
        _add(report["deleted"], "sales_order", [order])
    unused = conn.execute(
        "SELECT design_id FROM design d WHERE NOT EXISTS "
        "(SELECT 1 FROM sales_order s WHERE s.design_id = d.design_id) "
        "AND design_id <> ALL(%s) ORDER BY design_id",
        (touched.ids("design"),),
    ).fetchall()
    if unused:
        design = unused[int(rng.integers(0, len(unused)))][0]
        conn.execute("DELETE FROM design WHERE design_id = %s", (design,))
        _add(report["deleted"], "design", [design])

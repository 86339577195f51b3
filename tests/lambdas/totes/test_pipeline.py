"""End to end on the real snapshots: 2024-02-23, then the source brought up to 2024-11-15.

One module-scoped run of both cycles is shared; tests that change anything work on clones of the
source, lakes and warehouse, so every test sees the same starting point.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from totes.check.check import check
from totes.check.reconcile import format_report
from totes.cli import main
from totes.contracts.warehouse import TABLES
from totes.lake import LocalLake
from totes.load.rebuild import rebuild
from totes.pipeline import Stack, run_cycle
from totes.settings import DbSettings, ExtractSettings
from totes_dev.source.snapshots import load_snapshot, snapshot_path

FACT_COUNTS = {"fact_sales_order": 11_256, "fact_purchase_order": 4_709, "fact_payment": 15_866}


def _clone(admin: DbSettings, template: str | None, prefix: str) -> DbSettings:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    with psycopg.connect(**admin.conninfo(), autocommit=True) as conn:
        conn.execute(statement)
    return DbSettings(admin.host, admin.port, admin.user, admin.password, name)


def _query(db: DbSettings, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(**db.conninfo()) as conn:
        return conn.execute(statement.encode()).fetchall()


def dump(db: DbSettings) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for name, spec in TABLES.items():
        out[name] = _query(db, f"SELECT * FROM {name} ORDER BY {spec.record_id or spec.key}")
    return out


@dataclass
class Loaded:
    stack: Stack
    root: Path
    checks: list[str]
    oks: list[bool]
    feb_summary: dict[str, Any]
    nov_summary: dict[str, Any]


@pytest.fixture(scope="module")
def loaded(
    pg_admin: DbSettings,
    source_template: Callable[[str], str],
    snapshots: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Loaded:
    root = tmp_path_factory.mktemp("pipeline")
    stack = Stack(
        source=_clone(pg_admin, source_template("feb"), "totes_e2e_source"),
        ingestion=LocalLake(root / "ingestion"),
        processed=LocalLake(root / "processed"),
        warehouse=_clone(pg_admin, None, "totes_e2e_wh"),
        settings=ExtractSettings(),
    )
    feb = run_cycle(stack)
    first = check(stack.source, stack.warehouse)
    load_snapshot(stack.source, snapshot_path(snapshots, "2024-11-15"))
    nov = run_cycle(stack, full_scan=True)
    second = check(stack.source, stack.warehouse)
    return Loaded(
        stack,
        root,
        [format_report(first), format_report(second)],
        [first.ok, second.ok],
        feb,
        nov,
    )


def _copy_stack(loaded: Loaded, pg_admin: DbSettings, tmp_path: Path) -> Stack:
    for part in ("ingestion", "processed"):
        shutil.copytree(loaded.root / part, tmp_path / part)
    return Stack(
        source=_clone(pg_admin, loaded.stack.source.database, "totes_e2e_source"),
        ingestion=LocalLake(tmp_path / "ingestion"),
        processed=LocalLake(tmp_path / "processed"),
        warehouse=_clone(pg_admin, loaded.stack.warehouse.database, "totes_e2e_wh"),
        settings=ExtractSettings(),
    )


def test_check_passes_after_the_feb_and_the_nov_cycle(loaded: Loaded) -> None:
    assert loaded.oks == [True, True], loaded.checks
    assert loaded.feb_summary["fact_versions_added"] == {
        "fact_sales_order": 6_941,
        "fact_purchase_order": 2_958,
        "fact_payment": 9_899,
    }
    assert set(loaded.nov_summary["seconds"]) == {"extract", "transform", "load", "total"}


def test_fact_history_counts_match_the_reference(loaded: Loaded) -> None:
    wh = loaded.stack.warehouse
    for fact, expected in FACT_COUNTS.items():
        assert _query(wh, f"SELECT count(*) FROM {fact}") == [(expected,)], fact
    assert _query(wh, "SELECT count(*) FROM fact_payment_current") == [(15_836,)]


def test_every_payment_that_flipped_to_paid_holds_two_versions(loaded: Loaded) -> None:
    rows = _query(
        loaded.stack.warehouse,
        "SELECT count(*) FILTER (WHERE n <> 2), count(*) FROM ("
        " SELECT payment_id, count(*) AS n FROM fact_payment GROUP BY payment_id"
        " HAVING bool_or(paid) AND bool_or(NOT paid)) AS flipped",
    )
    # the 30 Feb payments paid by Nov are among the flips; all have exactly two versions
    assert rows[0][0] == 0
    assert rows[0][1] >= 30
    unpaid_then_paid = _query(
        loaded.stack.warehouse,
        "SELECT bool_and(paid) FROM fact_payment_current WHERE payment_id IN ("
        " SELECT payment_id FROM fact_payment GROUP BY payment_id HAVING count(*) = 2)",
    )
    assert unpaid_then_paid == [(True,)]


def test_silently_edited_orders_hold_two_versions_and_current_matches_source(
    loaded: Loaded,
) -> None:
    wh, source = loaded.stack.warehouse, loaded.stack.source
    twice = _query(
        wh,
        "SELECT sales_order_id FROM fact_sales_order GROUP BY 1 HAVING count(*) = 2 ORDER BY 1",
    )
    assert len(twice) == 69
    assert (
        len(
            _query(
                wh,
                "SELECT purchase_order_id FROM fact_purchase_order GROUP BY 1 HAVING count(*) = 2",
            )
        )
        == 60
    )
    # the source's example: sales order 1 moved from staff 16 to staff 13
    assert (1,) in twice
    assert _query(
        wh, "SELECT sales_staff_id FROM fact_sales_order_current WHERE sales_order_id = 1"
    ) == _query(source, "SELECT staff_id FROM sales_order WHERE sales_order_id = 1")
    assert _query(
        wh,
        "SELECT sales_staff_id FROM fact_sales_order WHERE sales_order_id = 1 "
        "ORDER BY sales_record_id",
    ) == [(16,), (13,)]


def test_rebuild_reproduces_the_warehouse_row_for_row(loaded: Loaded, pg_admin: DbSettings) -> None:
    target = _clone(pg_admin, loaded.stack.warehouse.database, "totes_e2e_wh")
    with psycopg.connect(**target.conninfo(), autocommit=True) as conn:
        conn.execute("UPDATE dim_design SET design_name = 'stale'")  # replaced by the replay

    summary = rebuild(target, loaded.stack.processed)

    assert len(summary["batches"]) == 2
    assert dump(target) == dump(loaded.stack.warehouse)


def test_updating_units_sold_adds_exactly_one_fact_row(
    loaded: Loaded, pg_admin: DbSettings, tmp_path: Path
) -> None:
    stack = _copy_stack(loaded, pg_admin, tmp_path)
    before = _query(stack.warehouse, "SELECT count(*) FROM fact_sales_order")[0][0]
    bumped = datetime(2024, 11, 15, 15, 0, 0) + timedelta(milliseconds=5)
    with psycopg.connect(**stack.source.conninfo(), autocommit=True) as conn:
        conn.execute(
            "UPDATE sales_order SET units_sold = units_sold + 1, last_updated = %s "
            "WHERE sales_order_id = 7",
            (bumped,),
        )

    summary = run_cycle(stack)

    assert summary["fact_versions_added"] == {
        "fact_sales_order": 1,
        "fact_purchase_order": 0,
        "fact_payment": 0,
    }
    assert _query(stack.warehouse, "SELECT count(*) FROM fact_sales_order") == [(before + 1,)]
    assert check(stack.source, stack.warehouse).ok
    # a second cycle with nothing new adds nothing
    assert sum(run_cycle(stack)["fact_versions_added"].values()) == 0


def _check_exit(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> int:
    for prefix, db in (("", stack.source), ("_DW", stack.warehouse)):
        monkeypatch.setenv(f"PG_HOST{prefix}", db.host)
        monkeypatch.setenv(f"PG_PORT{prefix}", str(db.port))
        monkeypatch.setenv(f"PG_USER{prefix}", db.user)
        monkeypatch.setenv(f"PG_PASSWORD{prefix}", db.password)
        monkeypatch.setenv(f"PG_DATABASE{prefix}", db.database)
    return main(["check"])


@pytest.mark.parametrize(
    ("corruption", "expected"),
    [
        (
            "DELETE FROM fact_payment WHERE payment_record_id = "
            "(SELECT max(payment_record_id) FROM fact_payment WHERE paid)",
            "fact_payment",
        ),
        ("DELETE FROM fact_sales_order WHERE sales_record_id = 3", "fact_sales_order"),
        ("UPDATE dim_staff SET location = 'Leeds' WHERE staff_id = 1", "dim_staff: 0 missing"),
    ],
)
def test_check_reports_a_corrupted_warehouse(
    loaded: Loaded,
    pg_admin: DbSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    corruption: str,
    expected: str,
) -> None:
    stack = Stack(
        loaded.stack.source,
        loaded.stack.ingestion,
        loaded.stack.processed,
        _clone(pg_admin, loaded.stack.warehouse.database, "totes_e2e_wh"),
        loaded.stack.settings,
    )
    # the clone starts identical to the warehouse the fixture checked clean
    with psycopg.connect(**stack.warehouse.conninfo(), autocommit=True) as conn:
        conn.execute(corruption.encode())

    assert _check_exit(stack, monkeypatch) == 1
    report = capsys.readouterr().out
    assert "warehouse differs from the source" in report
    assert expected in report

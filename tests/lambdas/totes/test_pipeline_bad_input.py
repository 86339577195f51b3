"""Bad input from the source, end to end: each is a clear error naming table and column (schema
drift), or a quarantined row with its reason, counted in the run's summary and metrics, listed by
`totes quarantine list` with table, key and reason, and loaded once the cause is fixed (the
extract takes a corrected row by itself; `totes quarantine replay` sends back a row whose rule
or reference was the cause). Nothing is dropped silently: `totes check` agrees throughout.

The generated source enforces its constraints as the real one does; the tests that need a value
the real schema would refuse drop that constraint first, as a source that stopped enforcing it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from totes.check.check import check
from totes.check.reconcile import format_report
from totes.cli import main
from totes.errors import SchemaDriftError
from totes.extract.extractor import run_extract
from totes.lake import LocalLake
from totes.load.loader import load_pending
from totes.pipeline import Stack, run_cycle
from totes.settings import DbSettings, ExtractSettings
from totes.transform.handler import lambda_handler as transform_handler
from totes_dev.devstack.aws import LambdaContext
from totes_dev.source.simulate import simulate

pytestmark = pytest.mark.slow


@pytest.fixture
def stack(source_small: DbSettings, new_database: Any, tmp_path: Path) -> Stack:
    built = Stack(
        source_small,
        LocalLake(tmp_path / "ingestion"),
        LocalLake(tmp_path / "processed"),
        new_database("wh"),
        ExtractSettings(),
    )
    run_cycle(built)
    return built


def _sql(db: DbSettings, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(**db.conninfo(), autocommit=True) as conn:
        cursor = conn.execute(statement.encode(), args)
        return cursor.fetchall() if cursor.description else []


def _bump(table: str) -> str:
    """An UPDATE's SET clause part that stamps the row after everything already captured."""
    return f"last_updated = (SELECT max(last_updated) FROM {table}) + interval '1 minute'"


def _consistent(stack: Stack) -> None:
    report = check(stack.source, stack.warehouse)
    assert report.ok, format_report(report)


def _quarantine_list(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> list[dict[str, Any]]:
    monkeypatch.setenv("TOTES_INGESTION_URI", stack.ingestion.uri)
    monkeypatch.setenv("TOTES_PROCESSED_URI", stack.processed.uri)
    capsys.readouterr()
    assert main(["quarantine", "list"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("ALTER TABLE payment DROP COLUMN payment_date", "payment_date"),
        ("ALTER TABLE payment ALTER COLUMN paid TYPE text", "paid"),
        ("ALTER TABLE currency RENAME COLUMN currency_code TO code", "currency_code"),
    ],
)
def test_a_required_column_dropped_or_retyped_stops_the_extract_naming_it(
    stack: Stack, change: str, message: str
) -> None:
    head = stack.ingestion.list("_manifests/")
    _sql(stack.source, change)
    with pytest.raises(SchemaDriftError, match=message) as drift:
        run_cycle(stack)
    assert str(drift.value).startswith("[extract table=")
    assert list(stack.ingestion.list("_manifests/")) == list(head)  # nothing committed


def test_an_added_column_is_landed_and_the_rest_flows_on(stack: Stack) -> None:
    _sql(stack.source, "ALTER TABLE design ADD COLUMN colour text DEFAULT 'teal'")
    _sql(
        stack.source,
        f"UPDATE design SET design_name = 'Renamed', {_bump('design')} WHERE design_id = 3",
    )
    summary = run_cycle(stack)
    assert summary["landed"]["design"] == 1
    assert summary["loaded"]["dim_design"] == 1
    _consistent(stack)


def test_a_malformed_text_date_is_quarantined_then_its_correction_flows_in(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _sql(
        stack.source,
        f"UPDATE sales_order SET agreed_delivery_date = '2024-02-30', {_bump('sales_order')}"
        " WHERE sales_order_id = 7",
    )
    summary = run_cycle(stack)
    assert summary["quarantined"]["sales_order"] == 1
    _consistent(stack)  # the check leaves out exactly what the transform set aside
    listed = _quarantine_list(stack, monkeypatch, capsys)
    assert [(r["table"], r["key"]) for r in listed] == [("sales_order", 7)]
    assert "agreed_delivery_date is not a YYYY-MM-DD date" in listed[0]["reason"]
    # Fixed at the source: the extract lands the corrected row by itself, no replay needed.
    _sql(
        stack.source,
        f"UPDATE sales_order SET agreed_delivery_date = '2024-02-28', {_bump('sales_order')}"
        " WHERE sales_order_id = 7",
    )
    fixed = run_cycle(stack)
    assert fixed["quarantined"]["sales_order"] == 0
    assert fixed["fact_versions_added"]["fact_sales_order"] == 1
    _consistent(stack)


def test_a_reference_to_a_missing_key_is_quarantined_and_replayed_once_it_exists(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _sql(stack.source, "ALTER TABLE sales_order DROP CONSTRAINT sales_order_design_id_fkey")
    _sql(
        stack.source,
        f"UPDATE sales_order SET design_id = 9999, {_bump('sales_order')} WHERE sales_order_id = 4",
    )
    assert run_cycle(stack)["quarantined"]["sales_order"] == 1
    listed = _quarantine_list(stack, monkeypatch, capsys)
    assert [(r["table"], r["key"]) for r in listed] == [("sales_order", 4)]
    assert (
        "design_id refers to a design in neither the batch nor the current state"
        in (listed[0]["reason"])
    )
    # The design arrives later; the sale itself does not change again, so it must be replayed.
    _sql(
        stack.source,
        "INSERT INTO design (design_id, created_at, design_name, file_location, file_name,"
        " last_updated) SELECT 9999, max(created_at), 'Late', '/late', 'late.json',"
        " max(last_updated) + interval '1 minute' FROM design",
    )
    assert run_cycle(stack)["loaded"]["dim_design"] == 1
    capsys.readouterr()
    assert main(["quarantine", "replay", listed[0]["object"]]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == {"sales_order": 1}
    replayed = run_cycle(stack)
    assert replayed["quarantined"]["sales_order"] == 0
    assert replayed["fact_versions_added"]["fact_sales_order"] == 1
    current = _sql(
        stack.warehouse, "SELECT design_id FROM fact_sales_order_current WHERE sales_order_id = 4"
    )
    assert current == [(9999,)]
    _consistent(stack)


def test_an_unknown_currency_and_a_null_the_warehouse_needs_are_quarantined_and_counted(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _sql(stack.source, "ALTER TABLE staff ALTER COLUMN email_address DROP NOT NULL")
    _sql(
        stack.source, f"UPDATE staff SET email_address = NULL, {_bump('staff')} WHERE staff_id = 2"
    )
    _sql(
        stack.source,
        "INSERT INTO currency (currency_id, currency_code, created_at, last_updated)"
        " SELECT 4, 'XYZ', max(created_at), max(last_updated) + interval '1 minute' FROM currency",
    )
    # The extract, then the transform Lambda's handler, whose metrics are read, then the load.
    monkeypatch.setenv("TOTES_INGESTION_URI", stack.ingestion.uri)
    monkeypatch.setenv("TOTES_PROCESSED_URI", stack.processed.uri)
    run_extract(
        stack.source,
        stack.ingestion,
        run_id="bad-input",
        window_start=None,
        window_end=datetime.now(UTC),
        full_scan=False,
        settings=stack.settings,
    )
    capsys.readouterr()
    summary = transform_handler({"run_id": "bad-input"}, LambdaContext("totes-test-transform"))
    assert (summary["quarantined"]["staff"], summary["quarantined"]["currency"]) == (1, 1)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line[:1] == "{"]
    metrics = {
        (line["table"], line["QuarantinedRows"][0])
        for line in lines
        if "QuarantinedRows" in line and line.get("table") in ("staff", "currency")
    }
    assert metrics == {("staff", 1.0), ("currency", 1.0)}
    load_pending(stack.warehouse, stack.processed)
    listed = _quarantine_list(stack, monkeypatch, capsys)
    reasons = {(r["table"], r["key"]): r["reason"] for r in listed}
    assert reasons[("staff", 2)] == "email_address is NULL"
    assert reasons[("currency", 4)].startswith("currency_code is not one of EUR, GBP, USD")
    _consistent(stack)


def test_long_and_unusual_text_arrives_exactly(stack: Stack) -> None:
    text = "Ünïcødé ✓ 🚀 עברית " + "é" * 10_000 + ' "quoted", comma\nnew line\ttab \\ back'
    _sql(
        stack.source,
        f"UPDATE design SET design_name = %s, {_bump('design')} WHERE design_id = 5",
        text,
    )
    assert run_cycle(stack)["loaded"]["dim_design"] == 1
    assert _sql(stack.warehouse, "SELECT design_name FROM dim_design WHERE design_id = 5") == [
        (text,)
    ]
    _consistent(stack)


def test_activity_and_bad_rows_together_lose_nothing(stack: Stack) -> None:
    simulate(stack.source, minutes=60, seed=4, silent_edits=True)
    _sql(
        stack.source,
        f"UPDATE payment SET payment_date = 'soon', {_bump('payment')} WHERE payment_id = 9",
    )
    summary = run_cycle(stack, full_scan=True)
    assert summary["quarantined"]["payment"] == 1
    _consistent(stack)

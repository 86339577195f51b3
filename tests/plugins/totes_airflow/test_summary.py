from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from totes_airflow.summary import (
    SummaryError,
    format_summary,
    freshness_lag,
    summarise,
)


def _output(**overrides: Any) -> dict[str, Any]:
    output: dict[str, Any] = {
        "run_id": "scheduled__2026-11-25T23:20:00+00:00",
        "window_start": "2026-11-25T23:00:00+00:00",
        "window_end": "2026-11-25T23:20:00+00:00",
        "full_scan": False,
        "finished_at": "2026-11-25T23:24:30.500000+00:00",
        "extract": {"batch_id": "b1", "rows": {"sales_order": 7, "payment": 2}},
        "transform": {"batches": ["b1"], "rows": {"fact_sales_order": 7}, "quarantined": {}},
        "load": {
            "batches": ["b1"],
            "rows": {"fact_sales_order": 7, "dim_date": 0},
            "fact_versions_added": {"fact_sales_order": 5},
        },
    }
    output.update(overrides)
    return output


def test_lag_is_from_window_start_to_finish() -> None:
    start = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    end = datetime(2026, 1, 1, 0, 24, 30, tzinfo=UTC)
    assert freshness_lag(start, end).total_seconds() == 24 * 60 + 30


def test_summary_counts_per_stage_and_lag() -> None:
    summary = summarise(_output())
    assert summary["extracted"] == {"payment": 2, "sales_order": 7}
    assert summary["transformed"] == {"fact_sales_order": 7}
    assert summary["loaded"] == {"dim_date": 0, "fact_sales_order": 7}
    assert summary["fact_versions_added"] == {"fact_sales_order": 5}
    assert summary["quarantined"] == {}
    assert summary["batches"] == ["b1"]
    assert summary["freshness_lag_seconds"] == 24 * 60 + 30.5
    assert summary["within_freshness_target"] is True


def test_run_finishing_over_thirty_minutes_after_window_start_misses_the_target() -> None:
    summary = summarise(_output(finished_at="2026-11-25T23:30:01Z"))
    assert summary["freshness_lag_seconds"] == 1801
    assert summary["within_freshness_target"] is False
    assert "MISSED" in format_summary(summary)


def test_nothing_pending_still_summarises() -> None:
    summary = summarise(
        _output(extract={"batch_id": None, "rows": {}}, transform={}, load={"batches": []})
    )
    assert summary["extracted"] == {}
    assert summary["fact_versions_added"] == {}
    text = format_summary(summary)
    assert "extracted: nothing" in text
    assert "fact versions added: nothing" in text


def test_format_lists_tables_with_totals() -> None:
    text = format_summary(summarise(_output()))
    assert "extracted (9): payment=2, sales_order=7" in text
    assert "fact versions added (5): fact_sales_order=5" in text
    assert "freshness lag 1470 s (target 1800 s: met)" in text


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (["not", "a", "mapping"], "not a JSON object"),
        (_output(finished_at=None), "no finished_at"),
        (_output(window_start="yesterday"), "not an ISO-8601"),
        (_output(window_end="2026-11-25T23:20:00"), "no time zone"),
        (_output(load={"rows": [1, 2]}), "not a table-to-count mapping"),
    ],
)
def test_bad_output_is_a_clear_error(output: Any, message: str) -> None:
    with pytest.raises(SummaryError, match=message):
        summarise(output)


def test_a_run_skipped_for_another_cycle_says_so_and_why() -> None:
    output = {
        key: _output()[key]
        for key in ("run_id", "window_start", "window_end", "full_scan", "finished_at")
    }
    reason = "another cycle is running: manual-run holds the lock since 2026-11-25 23:01:00Z"
    summary = summarise({**output, "skipped": True, "skipped_reason": reason})
    assert summary["skipped"] is True
    assert summary["skipped_reason"] == reason
    assert summary["loaded"] == {}
    text = format_summary(summary)
    assert f"SKIPPED, nothing done: {reason}" in text
    assert "loaded" not in text
    assert summarise(_output())["skipped"] is False

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from totes_airflow.summary import (
    FRESHNESS_DEADLINE,
    NOTE_LIMIT,
    SummaryError,
    delivery_bound,
    fit_note,
    format_note,
    format_summary,
    freshness_lag,
    summarise,
)

# The newest source change in the warehouse, as the ledger holds it (UTC, no zone).
NEWEST = datetime(2026, 11, 25, 23, 5, 0)


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


def test_delivery_bound_is_from_window_start_to_finish() -> None:
    start = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    end = datetime(2026, 1, 1, 0, 24, 30, tzinfo=UTC)
    assert delivery_bound(start, end).total_seconds() == 24 * 60 + 30


def test_freshness_is_from_the_newest_change_in_the_warehouse_to_finish() -> None:
    end = datetime(2026, 11, 25, 23, 24, 30, tzinfo=UTC)
    lag = freshness_lag(NEWEST, end)
    assert lag is not None
    assert lag.total_seconds() == 19 * 60 + 30
    assert freshness_lag(None, end) is None


def test_deadline_leaves_what_the_schedule_does_not_use_of_the_promise() -> None:
    assert FRESHNESS_DEADLINE.total_seconds() == 10 * 60


def test_summary_counts_per_stage_and_lag() -> None:
    summary = summarise(_output(), NEWEST)
    assert summary["extracted"] == {"payment": 2, "sales_order": 7}
    assert summary["transformed"] == {"fact_sales_order": 7}
    assert summary["loaded"] == {"dim_date": 0, "fact_sales_order": 7}
    assert summary["fact_versions_added"] == {"fact_sales_order": 5}
    assert summary["quarantined"] == {}
    assert summary["batches"] == ["b1"]
    assert summary["newest_change"] == "2026-11-25T23:05:00+00:00"
    assert summary["freshness_lag_seconds"] == 19 * 60 + 30.5
    assert summary["delivery_bound_seconds"] == 24 * 60 + 30.5
    assert summary["within_freshness_target"] is True


def test_newest_change_over_thirty_minutes_old_misses_the_target() -> None:
    summary = summarise(_output(finished_at="2026-11-25T23:35:01Z"), NEWEST)
    assert summary["freshness_lag_seconds"] == 1801
    assert summary["within_freshness_target"] is False
    assert "MISSED" in format_summary(summary)
    assert "**MISSED**" in format_note(summary)


def test_an_old_newest_change_with_nothing_new_delivered_is_an_idle_source_not_a_miss() -> None:
    """A month-old newest change, and this run added no fact version: every change before the
    window's end is in the warehouse, so totesys was idle and nothing is late."""
    idle = _output(load={"batches": [], "rows": {}, "fact_versions_added": {}})
    summary = summarise(idle, datetime(2026, 10, 25, 23, 5))
    assert summary["freshness_verdict"] == "idle"
    assert summary["within_freshness_target"] is True
    assert "MISSED" not in format_summary(summary)
    assert format_note(summary).startswith(
        "**Freshness** 31.0 days behind the newest source change "
        "(target 30 min: met, nothing new to deliver)"
    )


def test_versions_added_with_a_stale_warehouse_are_met_only_within_the_delivery_bound() -> None:
    month_old = datetime(2026, 10, 25, 23, 5)
    on_time = summarise(_output(), month_old)  # read at 23:00, finished at 23:24:30
    assert on_time["freshness_verdict"] == "met"
    late = summarise(_output(finished_at="2026-11-25T23:35:01Z"), month_old)
    assert late["freshness_verdict"] == "missed"
    assert "**MISSED**" in format_note(late)


def test_an_empty_warehouse_has_no_freshness_yet() -> None:
    summary = summarise(_output(), None)
    assert summary["freshness_lag_seconds"] is None
    assert summary["within_freshness_target"] is False
    assert "no fact in the warehouse yet" in format_summary(summary)
    assert "no fact in the warehouse yet" in format_note(summary)


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
    text = format_summary(summarise(_output(), NEWEST))
    assert "extracted (9): payment=2, sales_order=7" in text
    assert "fact versions added (5): fact_sales_order=5" in text
    assert "freshness lag 1170 s behind the newest source change 2026-11-25T23:05:00+00:00" in text
    assert "(target 1800 s: met); delivery bound 1470 s" in text


def test_note_is_markdown_with_a_row_per_table_that_changed() -> None:
    output = _output()
    output["transform"]["quarantined"] = {"fact_payment": 2}
    note = format_note(summarise(output, NEWEST))
    headline = note.splitlines()[0]  # what the run page previews
    assert headline == (
        "**Freshness** 19.5 min behind the newest source change (target 30 min: met); "
        "**quarantined** 2 (`totes quarantine list`)"
    )
    assert "extracted 9 rows from 2 source tables" in note
    assert "| table | loaded | versions added | quarantined |" in note
    assert "| fact_sales_order | 7 | 5 | 0 |" in note
    assert "| fact_payment | 0 | 0 | 2 |" in note
    assert "dim_date" not in note  # nothing loaded into it
    assert len(note) <= NOTE_LIMIT


def test_note_says_long_lags_in_hours_or_days() -> None:
    stale = datetime(2026, 11, 20, 23, 24, 30)
    assert "**Freshness** 5.0 days behind" in format_note(summarise(_output(), stale))
    hours = datetime(2026, 11, 25, 20, 24, 30)
    assert "**Freshness** 3.0 h behind" in format_note(summarise(_output(), hours))


def test_a_note_over_airflows_limit_is_cut_at_a_line() -> None:
    rows = "\n".join(f"| table_{i} | {i} | 0 | 0 |" for i in range(200))
    fitted = fit_note(f"**Window** w\n\n{rows}")
    assert len(fitted) <= NOTE_LIMIT
    assert fitted.endswith("(cut short: the summary task's XCom has it all)")
    assert "| table_0 | 0 | 0 | 0 |\n" in fitted
    body = fitted.split("\n\n(cut short")[0]
    assert body.endswith(" |")  # the last kept row is whole
    assert fit_note("short") == "short"


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
    assert format_note(summary).startswith(f"**Skipped**, nothing done: {reason}")
    assert summarise(_output())["skipped"] is False

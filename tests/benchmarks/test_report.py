"""The benchmark's arithmetic and verdicts, on hand-made results: no database, no bench run.

The figures are chosen so that a verdict flips if a comparison, a tolerance or the direction
of a ratio is wrong.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report


def _scale(
    *,
    extract: list[float],
    copy_out: list[float],
    peaks: dict[str, float],
    after_1: list[float] | None = None,
    after_10: list[float] | None = None,
) -> dict[str, Any]:
    stages = {
        stage: {"rows": 1000, "seconds": [2.0, 2.0, 2.0], "peak_rss_mb": [peak, peak - 10]}
        for stage, peak in peaks.items()
    }
    stages["extract"]["seconds"] = extract
    scale: dict[str, Any] = {
        "source_rows": 1000,
        "repeat": len(extract),
        "stages": stages,
        "raw": {
            "copy_out_seconds": copy_out,
            "copy_out_rows": 1000,
            "copy_in_fk_seconds": [4.0, 4.0, 4.0],
            "copy_in_no_fk_seconds": [1.0, 1.0, 1.0],
            "copy_in_rows": 800,
        },
        "parquet": {
            "ingestion_bytes": 27_000,
            "ingestion_rows": 1000,
            "processed_bytes": 16_000,
            "processed_rows": 800,
        },
    }
    if after_1 is not None and after_10 is not None:
        scale["incremental"] = {"after_1_seconds": after_1, "after_10_seconds": after_10}
    return scale


@pytest.fixture
def results() -> dict[str, Any]:
    """Every target met, each close to its goal."""
    return {
        "started": "2026-01-01T00:00:00+00:00",
        "seconds": 321.0,
        "machine": {"cpus": 2, "load_before": 1.0, "load_after": 2.0},
        "snapshot": {
            "name": "2024-02-23",
            "rows": 31194,
            "cycle_seconds": [0.9, 0.8, 1.0],
            "copy_in_fk_seconds": [1.0, 1.0, 1.0],
            "no_change_cycle_seconds": [0.05, 0.09, 0.2],
            "no_change_run_seconds": [0.5, 0.55, 0.9],
        },
        "scales": {
            "10": _scale(
                extract=[2.0, 2.0, 2.0],
                copy_out=[1.0, 1.1, 0.9],
                peaks={"extract": 300, "transform": 400, "load": 200},
                after_1=[1.0, 1.0, 1.0],
                after_10=[1.1, 1.2, 1.3],
            ),
            "100": {
                **_scale(
                    extract=[20.0],
                    copy_out=[10.0],
                    peaks={"extract": 350, "transform": 470, "load": 230},
                ),
                "fanout": {
                    "seconds": 12.0,
                    "rows": 1000,
                    "concurrency": 4,
                    "workers": {
                        "payment": {"seconds": 89.9, "rows": 900, "peak_rss_mb": 1131.0},
                        "currency": {"seconds": 0.3, "rows": 3, "peak_rss_mb": 120.0},
                        "staff": {"seconds": 0.5, "rows": 97, "peak_rss_mb": 125.0},
                    },
                },
                "state_machine": {
                    "seconds": 40.0,
                    "map_iterations": 11,
                    "extracted_rows": 1000,
                    "loaded_rows": 800,
                    "state_seconds": {"Extract": 9.0, "Transform": 6.0, "Load": 24.0},
                },
            },
        },
    }


def _verdicts(results: dict[str, Any]) -> dict[str, str]:
    return {t.name: t.verdict for t in report.targets(results)}


def test_median_and_paired_ratios() -> None:
    assert report.median([3.0, 1.0, 2.0]) == 2.0
    assert report.median([]) is None
    # pairs are divided repetition by repetition, not median by median
    assert report.paired_ratios([1.0, 4.0], [2.0, 2.0]) == [0.5, 2.0]
    assert report.median_ratio([1.0, 9.0, 3.0], [1.0, 3.0, 3.0]) == 1.0
    assert report.median_ratio([], []) is None
    assert report.rows_per_second(1000, [2.0, 4.0, 8.0]) == 250.0


def test_all_targets_met_at_their_goals(results: dict[str, Any]) -> None:
    verdicts = _verdicts(results)
    assert set(verdicts.values()) == {report.MET}, verdicts
    assert report.missed(results) == []


def test_extract_ratio_is_copy_seconds_over_extract_seconds(results: dict[str, Any]) -> None:
    assert report.extract_target(results).value == "0.50"
    results["scales"]["10"]["stages"]["extract"]["seconds"] = [2.1, 2.1, 2.1]
    assert report.extract_target(results).verdict == report.MISSED


def test_first_cycle_must_not_be_slower_than_copy(results: dict[str, Any]) -> None:
    results["snapshot"]["cycle_seconds"] = [1.1, 1.2, 0.9]
    target = report.first_cycle_target(results)
    assert (target.value, target.verdict) == ("1.10x", report.MISSED)


def test_no_change_goals_are_strict_bounds(results: dict[str, Any]) -> None:
    results["snapshot"]["no_change_cycle_seconds"] = [0.1]
    results["snapshot"]["no_change_run_seconds"] = [0.6]
    cycle, run = report.no_change_targets(results)
    assert cycle.verdict == run.verdict == report.MISSED


def test_memory_growth_and_ceiling(results: dict[str, Any]) -> None:
    large = results["scales"]["100"]["stages"]
    large["transform"]["peak_rss_mb"] = [1744.0]  # 4.4x scale 10's worst repetition
    large["extract"]["peak_rss_mb"] = [361.0]  # just over 1.2 x 300
    verdicts = {t.name.split()[0]: t for t in report.memory_targets(results)}
    assert verdicts["transform"].verdict == report.MISSED
    assert verdicts["transform"].value == "4.36x (1744 MB vs 400 MB)"
    assert verdicts["extract"].verdict == report.MISSED
    assert verdicts["load"].verdict == report.MET


def test_memory_ceiling_applies_even_without_growth(results: dict[str, Any]) -> None:
    for scale in ("10", "100"):
        results["scales"][scale]["stages"]["load"]["peak_rss_mb"] = [1100.0]
    load = report.memory_targets(results)[2]
    assert load.verdict == report.MISSED


def test_unmeasured_scales_are_reported_as_such(results: dict[str, Any]) -> None:
    del results["scales"]["100"]
    del results["snapshot"]
    verdicts = _verdicts(results)
    not_measured = [n for n, v in verdicts.items() if v == report.NOT_MEASURED]
    assert len(not_measured) == 7  # three memory rows, the fan-out, first cycle, two no-change
    assert verdicts[report.extract_target(results).name] == report.MET
    assert report.missed(results) == []


def test_fanout_projects_the_slowest_and_the_largest_worker(results: dict[str, Any]) -> None:
    fan = results["scales"]["100"]["fanout"]
    projected = report.fanout_projection(fan, 10.0)
    assert (projected["slowest"], projected["largest"]) == ("payment", "payment")
    assert projected["projected_seconds"] == pytest.approx(899.0)
    # the interpreter (the smallest worker) once, the data part ten times
    assert projected["projected_peak_mb"] == pytest.approx(120.0 + 1011.0 * 10)
    assert report.fanout_target(results).verdict == report.MET
    fan["workers"]["staff"]["seconds"] = 90.0  # the slowest worker is whichever it is
    assert report.fanout_target(results).verdict == report.MISSED
    fan["workers"]["staff"]["seconds"] = 0.5
    fan["workers"]["payment"]["peak_rss_mb"] = 1133.0
    assert report.fanout_target(results).verdict == report.MISSED
    del results["scales"]["100"]["fanout"]
    assert report.fanout_target(results).verdict == report.NOT_MEASURED


def test_aged_incremental_tolerance(results: dict[str, Any]) -> None:
    inc = results["scales"]["10"]["incremental"]
    assert report.aged_target(results).verdict == report.MET  # median ratio 1.2
    inc["after_10_seconds"] = [1.3, 1.25, 1.0]
    assert report.aged_target(results).verdict == report.MISSED
    del results["scales"]["10"]["incremental"]
    assert report.aged_target(results).verdict == report.NOT_MEASURED


def test_markdown_tables_are_well_formed(results: dict[str, Any]) -> None:
    markdown = report.render_markdown(results)
    tables = [block.splitlines() for block in markdown.split("\n\n") if block.startswith("|")]
    assert len(tables) == 5
    for table in tables:
        assert len({line.count("|") for line in table}) == 1, table
    assert "| extract vs raw COPY out, scale 10, full first run | >= 0.5 | 0.50 | met |" in markdown
    assert "| 100 | 40.00 | 11 | 9.00 | 6.00 | 24.00 | 800 |" in markdown
    # stages of each scale, numbers with a thin grouping space
    assert "| 10 | extract | 1 000 | 2.000 | 500 | 295 |" in markdown
    assert "| 10 | raw COPY in, no keys | 800 | 1.000 | 800 |  |" in markdown
    # ratios row: extract 0.5, load vs COPY with keys 2.0, without 0.5; Parquet bytes per row
    assert "| 10 | 0.50 | 2.00 | 0.50 | 27.0 | 20.0 | 1.000 | 1.200 |" in markdown
    assert "whole bench 321 s" in markdown


def test_render_does_not_change_the_results(results: dict[str, Any]) -> None:
    before = copy.deepcopy(results)
    report.render_markdown(results)
    assert json.dumps(results, sort_keys=True) == json.dumps(before, sort_keys=True)


def test_report_imports_no_database_driver_or_pipeline() -> None:
    probe = (
        "import sys, benchmarks.report; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('psycopg', 'boto3', 'pyarrow', 'totes', 'totes_dev')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"

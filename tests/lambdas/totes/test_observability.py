"""What reaches CloudWatch from a cycle of the three handlers: JSON log lines that carry the run
id and the Lambda context, and the metrics, as embedded-metric-format lines on stdout."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from totes.extract.handler import lambda_handler as extract
from totes.load.handler import lambda_handler as load
from totes.settings import DbSettings
from totes.transform.handler import lambda_handler as transform
from totes_dev.devstack.aws import LambdaContext
from totes_dev.devstack.deploy import database_environment


@pytest.fixture
def configured(
    source_feb: DbSettings, new_database: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = new_database("wh")
    for name, value in {
        **database_environment(source_feb, warehouse),
        "TOTES_INGESTION_URI": str(tmp_path / "ingestion"),
        "TOTES_PROCESSED_URI": str(tmp_path / "processed"),
    }.items():
        monkeypatch.setenv(name, value)


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _metrics(lines: list[dict[str, Any]]) -> dict[tuple[str, tuple[tuple[str, str], ...]], Any]:
    """(metric name, its dimensions) -> value, from every EMF line."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
    for line in lines:
        if "_aws" not in line:
            continue
        for directive in line["_aws"]["CloudWatchMetrics"]:
            (dimensions,) = directive["Dimensions"]
            dims = tuple(sorted((d, line[d]) for d in dimensions))
            for metric in directive["Metrics"]:
                value = line[metric["Name"]]
                found[(metric["Name"], dims)] = value[0] if isinstance(value, list) else value
    return found


@pytest.mark.usefixtures("configured")
def test_a_cycle_logs_with_the_run_id_and_emits_its_metrics(
    capsys: pytest.CaptureFixture[str],
) -> None:
    window_end = datetime.now(UTC)
    event = {
        "run_id": "scheduled__2026-12-01T08:00:00+00:00",
        "window_start": (window_end - timedelta(minutes=20)).isoformat(),
        "window_end": window_end.isoformat(),
        "full_scan": False,
    }
    capsys.readouterr()
    extract(event, LambdaContext("totes-dev-extract"))
    transform(event, LambdaContext("totes-dev-transform"))
    loaded = load(event, LambdaContext("totes-dev-load"))
    lines = _lines(capsys.readouterr().out)

    logs = [line for line in lines if "message" in line]
    assert {line["function_name"] for line in logs} == {
        "totes-dev-extract",
        "totes-dev-transform",
        "totes-dev-load",
    }
    for line in logs:
        assert line["correlation_id"] == event["run_id"], line
        assert line["function_request_id"]
        assert isinstance(line["cold_start"], bool)
    assert {"extract.committed", "transform.batch", "load.batch", "load.done"} <= {
        line["message"] for line in logs
    }

    metrics = _metrics(lines)
    service = ("service", "totes")
    assert metrics[("Rows", (service, ("stage", "extract"), ("table", "sales_order")))] == 6941
    assert metrics[("Rows", (service, ("stage", "transform"), ("table", "fact_payment")))] == 9899
    added = ("FactVersionsAdded", (service, ("stage", "load"), ("table", "fact_purchase_order")))
    assert metrics[added] == 2958
    assert metrics[("QuarantinedRowsTotal", (service,))] == 0
    for seconds in ("ExtractSeconds", "TransformSeconds", "LoadSeconds"):
        assert metrics[(seconds, (service,))] > 0
    lag = metrics[("FreshnessLagSeconds", (service,))]
    assert 20 * 60 <= lag < 20 * 60 + 120  # since the previous run read the source
    assert lag == loaded["freshness"]["FreshnessLagSeconds"]
    # The newest change in the Feb snapshot is from 2024-02-23: years old by now.
    assert metrics[("NewestChangeAgeSeconds", (service,))] > 365 * 86400
    assert loaded["newest_change"].startswith("2024-02-23")

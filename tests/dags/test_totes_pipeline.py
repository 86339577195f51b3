"""The DAG as Airflow loads it: schedule, tasks, retries, callbacks and documentation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from typing import Any

import pytest

from totes_dev.devstack.airflow import DAGS_FOLDER

DAG_FILE = DAGS_FOLDER / "totes_pipeline.py"


@pytest.fixture(scope="module")
def dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["totes_pipeline"]


def test_parsing_needs_neither_aws_nor_a_database() -> None:
    """Parse in a fresh interpreter whose AWS endpoint and metadata database both refuse
    connections: any call at import time would be an import error or a timeout."""
    script = textwrap.dedent(
        f"""
        import json, time
        started = time.monotonic()
        from airflow.dag_processing.dagbag import DagBag
        imported = time.monotonic()
        bag = DagBag(dag_folder={str(DAG_FILE)!r})
        print(json.dumps({{
            "errors": {{k: str(v) for k, v in bag.import_errors.items()}},
            "dags": sorted(bag.dag_ids),
            "parse_seconds": time.monotonic() - imported,
        }}))
        """
    )
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_MAX_ATTEMPTS": "1",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://nobody@127.0.0.1:9/none",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert report["dags"] == ["totes_pipeline"]
    assert report["parse_seconds"] < 5


def test_schedule_is_a_twenty_minute_interval_timetable(dag: Any) -> None:
    from airflow.sdk import CronDataIntervalTimetable

    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.timetable.expression == "*/20 * * * *"
    assert str(dag.timetable.timezone) == "UTC"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert set(dag.tags) == {"totes", "etl", "step-functions"}


def test_each_run_covers_the_last_complete_twenty_minutes(dag: Any) -> None:
    from airflow.serialization.encoders import coerce_to_core_timetable
    from pendulum import datetime

    core = coerce_to_core_timetable(dag.timetable)
    window = core.infer_manual_data_interval(run_after=datetime(2026, 3, 1, 10, 47, tz="UTC"))
    assert (window.start, window.end) == (
        datetime(2026, 3, 1, 10, 20, tz="UTC"),
        datetime(2026, 3, 1, 10, 40, tz="UTC"),
    )


CHECK_TASKS = {
    "warehouse_checks.dimension_keys",
    "warehouse_checks.fact_references",
    "warehouse_checks.current_views",
    "warehouse_checks.fact_versions",
}


def test_tasks_run_in_order(dag: Any) -> None:
    """The execution's output is read once, by the sensor; the checks gate the summary."""
    assert set(dag.task_ids) == {"start_pipeline", "wait_for_pipeline", "summary", *CHECK_TASKS}
    assert dag.get_task("wait_for_pipeline").upstream_task_ids == {"start_pipeline"}
    for check in CHECK_TASKS:
        assert dag.get_task(check).upstream_task_ids == {"wait_for_pipeline"}
    assert dag.get_task("summary").upstream_task_ids == CHECK_TASKS


def test_warehouse_checks_use_the_postgres_connection_and_fail_without_retrying(
    dag: Any,
) -> None:
    from airflow.providers.common.sql.operators.sql import SQLTableCheckOperator

    from totes_airflow.warehouse_checks import CHECK_GROUPS, ONE_ROW

    for task_id in CHECK_TASKS:
        check = dag.get_task(task_id)
        assert isinstance(check, SQLTableCheckOperator)
        assert check.conn_id == "totes_warehouse"
        assert check.table == ONE_ROW
        assert check.checks == CHECK_GROUPS[task_id.split(".")[1]]
        assert check.retry_on_failure is False
    names = {name for task_id in CHECK_TASKS for name in dag.get_task(task_id).checks}
    assert "dim_staff_key_unique" in names
    assert "fact_payment_transaction_id_resolves" in names
    assert "fact_sales_order_current_one_per_key" in names
    assert "fact_purchase_order_no_version_twice" in names


def test_assets_trace_totesys_to_the_lakes_to_the_warehouse(dag: Any) -> None:
    from totes_airflow.warehouse_checks import DIMENSIONS, FACTS

    def names(assets: Any) -> set[str]:
        return {asset.name for asset in assets}

    wait = dag.get_task("wait_for_pipeline")
    assert names(wait.inlets) == {"totesys"}
    assert names(wait.outlets) == {"ingestion_lake", "processed_lake"}
    summary = dag.get_task("summary")
    assert names(summary.inlets) == {"processed_lake"}
    tables = [d.name for d in DIMENSIONS] + [f.name for f in FACTS]
    assert names(summary.outlets) == {f"warehouse.{table}" for table in tables}
    assert {a.uri for a in wait.outlets} == {
        "s3://totes-dev-ingestion/",
        "s3://totes-dev-processed/",
    }
    for task_id in ("start_pipeline", *CHECK_TASKS):
        assert dag.get_task(task_id).outlets == []


def test_a_run_not_finished_ten_minutes_after_it_was_queued_alerts(dag: Any) -> None:
    from airflow.sdk.definitions.deadline import DeadlineReference

    [alert] = dag.deadline
    assert alert.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert alert.interval == timedelta(minutes=10)
    assert alert.callback.path == "totes_airflow.deadlines.notify_missed_deadline"
    from totes_airflow.config import PipelineConfig

    # The failure emails' topic Variable and AWS connection: one alert path for both.
    assert alert.callback.kwargs == {
        "topic_variable": "totes_alerts_topic_arn",
        "default_topic_arn": "arn:aws:sns:eu-west-2:123456789012:totes-dev-alerts",
        "aws_conn_id": PipelineConfig.from_env().aws_conn_id,
    }


def test_operators_are_the_providers_made_idempotent(dag: Any) -> None:
    from airflow.providers.amazon.aws.operators.step_function import (
        StepFunctionStartExecutionOperator,
    )
    from airflow.providers.amazon.aws.sensors.step_function import StepFunctionExecutionSensor

    from totes_airflow.operators import IdempotentStepFunctionStartExecutionOperator

    start = dag.get_task("start_pipeline")
    assert isinstance(start, IdempotentStepFunctionStartExecutionOperator)
    assert isinstance(start, StepFunctionStartExecutionOperator)
    assert "totes_state_machine_arn" in start.state_machine_arn
    wait = dag.get_task("wait_for_pipeline")
    assert isinstance(wait, StepFunctionExecutionSensor)
    assert wait.mode == "reschedule"
    assert "start_pipeline" in wait.execution_arn


def test_retries_back_off_and_failures_notify_the_alerts_topic(dag: Any) -> None:
    from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

    for task in dag.tasks:
        assert task.retries == 3
        assert task.retry_exponential_backoff
        assert task.retry_delay == timedelta(seconds=30)
        assert task.max_retry_delay == timedelta(minutes=5)
        callbacks = task.on_failure_callback
        assert len(callbacks) == 1
        notifier = callbacks[0]
        assert isinstance(notifier, SnsNotifier)
        assert "totes_alerts_topic_arn" in notifier.target_arn
        for field in ("dag.dag_id", "run_id", "ti.task_id", "data_interval_start", "ti.log_url"):
            assert field in notifier.message


def test_full_scan_is_a_boolean_parameter_defaulting_to_false(dag: Any) -> None:
    param = dag.params.get_param("full_scan")
    assert param.value is False
    assert param.schema["type"] == "boolean"


def test_documentation_explains_freshness_and_the_runbook(dag: Any) -> None:
    doc = dag.doc_md
    assert "## Runbook" in doc
    assert "within 30" in doc
    assert "20 min + run time" in doc
    assert "airflow backfill create --dag-id totes_pipeline" in doc
    assert "Clear `start_pipeline`" in doc
    assert "A warehouse check failed" in doc
    assert "**deadline**" in doc

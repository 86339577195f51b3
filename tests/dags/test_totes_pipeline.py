"""The DAG as Airflow loads it: schedule, tasks, retries, callbacks and documentation."""

from __future__ import annotations

import itertools
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


def test_tasks_run_in_order(dag: Any) -> None:
    order = ["start_pipeline", "wait_for_pipeline", "pipeline_output", "summary"]
    assert sorted(dag.task_ids) == sorted(order)
    for upstream, downstream in itertools.pairwise(order):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}


def test_operators_are_the_providers_made_idempotent(dag: Any) -> None:
    from airflow.providers.amazon.aws.operators.step_function import (
        StepFunctionGetExecutionOutputOperator,
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
    assert isinstance(dag.get_task("pipeline_output"), StepFunctionGetExecutionOutputOperator)


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

"""The failure notifier against a topic on the moto server: one notifier serves every task, so
each failure must produce its own email."""

from __future__ import annotations

import uuid

import boto3

from totes_airflow.alerts import failure_notifier
from totes_dev.devstack.aws import MotoStack
from totes_dev.devstack.deploy import read_alerts, subscribe_queue


class _Ti:
    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.try_number = 1
        self.log_url = f"http://airflow/dags/totes_pipeline/runs/r/tasks/{task_id}"


def _context(run_id: str, task_id: str, error: str) -> dict[str, object]:
    return {
        "dag": None,
        "run_id": run_id,
        "ti": _Ti(task_id),
        "data_interval_start": "2026-11-20 10:00:00+00:00",
        "data_interval_end": "2026-11-20 10:20:00+00:00",
        "exception": error,
        "params": {},
    }


def test_two_failures_through_one_notifier_send_two_different_emails(
    moto_stack: MotoStack,
) -> None:
    name = f"alerts-test-{uuid.uuid4().hex[:8]}"
    topic = boto3.client("sns").create_topic(Name=name)["TopicArn"]
    queue = subscribe_queue(topic, f"{name}-inbox")
    notifier = failure_notifier(topic_arn=topic, aws_conn_id=None)
    first = _context("run_a", "warehouse_checks.fact_versions", "check failed")
    second = _context("run_b", "wait_for_pipeline", "SourceError")
    from airflow.sdk import DAG

    dag = DAG("totes_pipeline", schedule=None)
    for context in (first, second):
        context["dag"] = dag
        notifier(context)

    alerts = read_alerts(queue)
    assert [a["subject"] for a in alerts] == [
        "Terrific Totes pipeline task failed: totes_pipeline.warehouse_checks.fact_versions",
        "Terrific Totes pipeline task failed: totes_pipeline.wait_for_pipeline",
    ]
    assert "Run:    run_a" in alerts[0]["message"]
    assert "Error:  check failed" in alerts[0]["message"]
    assert "Run:    run_b" in alerts[1]["message"]
    assert "Error:  SourceError" in alerts[1]["message"]
    # The shared notifier keeps its templates for the next failure.
    assert "{{ run_id }}" in notifier.message

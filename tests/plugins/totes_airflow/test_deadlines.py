"""The freshness deadline's callback, awaited as the triggerer awaits it, publishing to a topic
on the moto server; and the deadline as the DAG declares it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import boto3
import pytest

from totes_airflow.deadlines import freshness_deadline, notify_missed_deadline
from totes_dev.devstack.aws import MotoStack
from totes_dev.devstack.deploy import read_alerts, subscribe_queue

# What the scheduler hands the callback when it marks the deadline missed (Deadline.handle_miss):
# the run as the REST API shows it (DAGRunResponse: its id is dag_run_id), and the deadline.
CONTEXT = {
    "dag_run": {
        "dag_id": "totes_pipeline",
        "dag_run_id": "scheduled__2026-11-20T10:00:00+00:00",
        "data_interval_start": "2026-11-20T10:00:00Z",
        "data_interval_end": "2026-11-20T10:20:00Z",
        "queued_at": "2026-11-20T10:20:01Z",
        "state": "running",
    },
    "deadline": {"id": "d1", "deadline_time": "2026-11-20T10:30:01Z"},
}


@pytest.fixture
def topic(moto_stack: MotoStack) -> tuple[str, str]:
    name = f"deadline-test-{uuid.uuid4().hex[:8]}"
    arn = boto3.client("sns").create_topic(Name=name)["TopicArn"]
    return arn, subscribe_queue(arn, f"{name}-inbox")


def test_a_missed_deadline_publishes_a_late_run_alert(
    topic: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    arn, queue = topic
    # The Variable wins over the default, as on MWAA (there it comes from Secrets Manager).
    monkeypatch.setenv("AIRFLOW_VAR_DEADLINE_TEST_TOPIC", arn)
    asyncio.run(
        notify_missed_deadline(
            context=dict(CONTEXT),
            topic_variable="deadline_test_topic",
            default_topic_arn="arn:aws:sns:eu-west-2:123456789012:nowhere",
            aws_conn_id=None,
        )
    )
    [alert] = read_alerts(queue)
    assert alert["subject"] == (
        "Terrific Totes pipeline late: totes_pipeline missed its freshness deadline"
    )
    message = alert["message"]
    assert "Run:      scheduled__2026-11-20T10:00:00+00:00" in message
    assert "Window:   2026-11-20T10:00:00Z to 2026-11-20T10:20:00Z" in message
    assert "Deadline: 2026-11-20T10:30:01Z" in message
    assert "State:    running" in message


def test_deadline_counts_from_the_queue_time_and_calls_the_notifier() -> None:
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import DeadlineReference

    alert = freshness_deadline(
        interval=timedelta(minutes=10),
        topic_variable="totes_alerts_topic_arn",
        default_topic_arn="arn:aws:sns:eu-west-2:123456789012:totes-dev-alerts",
        aws_conn_id=None,
    )
    assert alert.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert alert.interval == timedelta(minutes=10)
    assert isinstance(alert.callback, AsyncCallback)
    assert alert.callback.path == "totes_airflow.deadlines.notify_missed_deadline"
    assert alert.callback.kwargs["topic_variable"] == "totes_alerts_topic_arn"

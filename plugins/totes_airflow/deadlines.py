"""The freshness deadline: an alert on the alerts topic when a run has not finished in time to
keep the 30-minute promise.

A run for the window ``[T - 20 min, T)`` is queued at ``T`` and delivers changes made since
``T - 20 min``; for the oldest of them to be in the warehouse within 30 minutes the run must
finish by ``T + 10 min``. So the deadline is the run's queue time plus the promise minus the
schedule interval. Measured from the queue time rather than the logical date, a backfill or a
manual run of an old window gets the same ten minutes instead of being late before it starts.

Airflow's scheduler notices the missed deadline and hands the callback to the triggerer, which
awaits :func:`notify_missed_deadline` with a small context (the run and the deadline). The topic
ARN is resolved there, from the same Airflow Variable the failure emails use, so that the
serialised DAG carries no account-specific value.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.notifications.sns import SnsNotifier
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

SUBJECT = "Terrific Totes pipeline late: {{ dag_run.dag_id }} missed its freshness deadline"

MESSAGE = """\
A pipeline run has not finished by its freshness deadline, so changes made in totesys may take
longer than 30 minutes to reach the warehouse.

DAG:      {{ dag_run.dag_id }}
Run:      {{ dag_run.dag_run_id }}
Window:   {{ dag_run.data_interval_start }} to {{ dag_run.data_interval_end }}
Queued:   {{ dag_run.queued_at }}
Deadline: {{ deadline.deadline_time }}
State:    {{ dag_run.state }}

Runbook: open the run in Airflow; wait_for_pipeline links to the Step Functions execution.
A run still waiting for the cycle lock, a slow stage or a large backlog all show there.
"""


async def notify_missed_deadline(
    *,
    context: dict[str, Any],
    topic_variable: str,
    default_topic_arn: str,
    aws_conn_id: str | None,
) -> None:
    """Publish the late-run message through the provider's SnsNotifier.

    The notifier's synchronous path runs in a thread: its async path needs aiobotocore, which
    the Airflow side does not install, and the triggerer serves Variable and Connection lookups
    from worker threads.
    """
    from airflow.sdk import Variable

    def publish() -> None:
        topic = Variable.get(topic_variable, default=default_topic_arn)
        SnsNotifier(aws_conn_id=aws_conn_id, target_arn=topic, subject=SUBJECT, message=MESSAGE)(
            context
        )

    await asyncio.to_thread(publish)


def freshness_deadline(
    *,
    interval: timedelta,
    topic_variable: str,
    default_topic_arn: str,
    aws_conn_id: str | None,
) -> DeadlineAlert:
    return DeadlineAlert(
        name="freshness",
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=interval,
        callback=AsyncCallback(
            notify_missed_deadline,
            kwargs={
                "topic_variable": topic_variable,
                "default_topic_arn": default_topic_arn,
                "aws_conn_id": aws_conn_id,
            },
        ),
    )

"""Failure emails: the provider's SnsNotifier publishing to the alerts topic, which has the email
subscriptions. The message names everything the on-call person needs to find the failure."""

from __future__ import annotations

import copy
from typing import Any

from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

SUBJECT = "Terrific Totes pipeline task failed: {{ dag.dag_id }}.{{ ti.task_id }}"

MESSAGE = """\
Airflow task failed after {{ ti.try_number }} attempt(s).

DAG:    {{ dag.dag_id }}
Run:    {{ run_id }}
Task:   {{ ti.task_id }}
Window: {{ data_interval_start }} to {{ data_interval_end }}
Log:    {{ ti.log_url }}

Error:  {{ exception }}

Runbook: open the DAG in Airflow and read its documentation (Runbook section).
"""


class AlertSnsNotifier(SnsNotifier):
    """The provider's notifier, rendering a fresh copy for every failure.

    A notifier renders its template fields in place, and this one is shared by every task
    (``default_args``): where two tasks fail in one process (``dag.test()``, a worker that
    reuses its interpreter) the second email would repeat the first one's run and error.
    """

    def __call__(self, *args: Any) -> None:
        SnsNotifier.__call__(copy.copy(self), *args)


def failure_notifier(*, topic_arn: str, aws_conn_id: str | None) -> SnsNotifier:
    """``topic_arn`` may be a template (rendered when the callback runs, not when parsing)."""
    return AlertSnsNotifier(
        aws_conn_id=aws_conn_id, target_arn=topic_arn, subject=SUBJECT, message=MESSAGE
    )

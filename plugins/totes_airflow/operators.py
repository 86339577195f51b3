"""The amazon provider's Step Functions operators, made safe to re-run and explicit on failure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.amazon.aws.links.step_function import (
    StateMachineDetailsLink,
    StateMachineExecutionsDetailsLink,
)
from airflow.providers.amazon.aws.operators.step_function import (
    StepFunctionStartExecutionOperator,
)
from airflow.providers.amazon.aws.sensors.step_function import StepFunctionExecutionSensor
from airflow.providers.common.sql.operators.sql import SQLTableCheckOperator
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowFailException

from totes_airflow.assets import lake_extras
from totes_airflow.executions import MAX_ATTEMPTS, failure_reason, start_or_reuse

if TYPE_CHECKING:
    from airflow.sdk import Context


class IdempotentStepFunctionStartExecutionOperator(StepFunctionStartExecutionOperator):
    """Starts the state machine once per DAG run, however often the task itself runs.

    The execution name comes from the DAG id and run id (see ``execution_name``). Running the task
    again for the same run reuses that run's execution while it is running or after it succeeded,
    and starts a fresh attempt after it failed; see ``start_or_reuse`` for why not a redrive.
    Returns the execution ARN (XCom), which the sensor and the output task read.
    """

    template_fields: Sequence[str] = tuple(
        field
        for field in StepFunctionStartExecutionOperator.template_fields
        if field not in ("name", "is_redrive_execution")
    )

    def __init__(self, *, max_attempts: int = MAX_ATTEMPTS, **kwargs: Any) -> None:
        for unsupported in ("name", "is_redrive_execution", "deferrable"):
            if kwargs.get(unsupported):
                raise ValueError(
                    f"{type(self).__name__} does not take {unsupported}: the name comes from the "
                    "DAG run and the wait is the sensor's job"
                )
        kwargs.pop("deferrable", None)
        super().__init__(deferrable=False, **kwargs)
        self.max_attempts = max_attempts

    def execute(self, context: Context) -> str:
        StateMachineDetailsLink.persist(
            context=context,
            operator=self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            state_machine_arn=self.state_machine_arn,
        )
        execution = start_or_reuse(
            self.hook.conn,
            state_machine_arn=self.state_machine_arn,
            dag_id=self.dag_id,
            run_id=context["run_id"],
            execution_input=self.state_machine_input or {},
            max_attempts=self.max_attempts,
        )
        StateMachineExecutionsDetailsLink.persist(
            context=context,
            operator=self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            execution_arn=execution.arn,
        )
        for failure in execution.previous_failures:
            self.log.warning("Earlier attempt of this run did not succeed: %s", failure)
        self.log.info("Execution %s (%s): %s", execution.name, execution.action, execution.arn)
        return execution.arn


class StepFunctionExecutionFailureSensor(StepFunctionExecutionSensor):
    """The provider's sensor, failing with the execution's error and cause, and recording what
    the execution did to the lakes.

    The provider reports a failed execution as ``State Machine Output: None`` (failed executions
    have no output), which is useless in an alert email; and it fails retryably, although a
    closed execution cannot change, so retries would only delay the alert. Re-running the work is
    a decision for the runbook (clear the start task), not an automatic retry.

    On success the output goes to XCom (key ``output``, as the provider does), read once: the
    downstream tasks take it from there, and the lake assets among this task's outlets get
    events whose extras carry the rows each stage wrote.
    """

    def __init__(self, *, lakes: tuple[Asset, Asset] | None = None, **kwargs: Any) -> None:
        """``lakes``: the ingestion and processed lake assets, added to the outlets."""
        if lakes is not None:
            kwargs["outlets"] = [*(kwargs.get("outlets") or []), *lakes]
        super().__init__(**kwargs)
        self.lakes = lakes

    def poke(self, context: Context) -> bool:
        described = self.hook.describe_execution(self.execution_arn)
        status = described["status"]
        if status in self.FAILURE_STATES:
            raise AirflowFailException(failure_reason(described))
        if status in self.INTERMEDIATE_STATES:
            return False
        output = json.loads(described["output"]) if described.get("output") else None
        context["ti"].xcom_push(key="output", value=output)
        if self.lakes is not None:
            ingestion, processed = self.lakes
            ingestion_extra, processed_extra = lake_extras(output)
            context["outlet_events"][ingestion].extra = ingestion_extra
            context["outlet_events"][processed].extra = processed_extra
        return True


class WarehouseCheckOperator(SQLTableCheckOperator):
    """The provider's table check, failing at once on a failed check and naming it.

    A check that found a broken invariant will find it again, so only errors reaching the
    database are retried (``retry_on_failure=False``); and the failure names the checks that
    failed rather than repeating the whole generated query, so that the alert email reads.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("retry_on_failure", False)
        super().__init__(**kwargs)

    def _raise_exception(self, exception_string: str) -> NoReturn:
        failed = [name for name, check in self.checks.items() if check.get("success") is False]
        if failed:
            raise AirflowFailException(
                f"warehouse check(s) failed: {', '.join(failed)} "
                f"(the task log has each check's SQL)"
            )
        super()._raise_exception(exception_string)

"""The start operator and the sensor inside real Airflow task runs (``dag.test``), against moto's
Step Functions running a deployed copy of our state machine with stand-in stages."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from totes.naming import ResourceNames
from totes.settings import DbSettings
from totes_dev.devstack.aws import MotoStack
from totes_dev.devstack.deploy import Deployment, deploy, extract_stand_in

LOGICAL_DATE = datetime(2026, 1, 1, 0, 40, tzinfo=UTC)
# dag.test names its run after run_after; a fixed one makes a second dag.test re-run the same run
# (it deletes and recreates the run under the same id), as clearing a finished run does.
RUN_AFTER = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)


class Stage:
    def __init__(self) -> None:
        self.fail = False
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def handler(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self.lock:
            self.events.append(event)
        if self.fail:
            raise RuntimeError("[extract table=sales_order] stand-in failure")
        return {"rows": {"sales_order": 1}}


@pytest.fixture
def machine(moto_stack: MotoStack) -> tuple[Deployment, Stage]:
    stage = Stage()
    deployment = deploy(
        {},
        ResourceNames(environment=f"o{uuid.uuid4().hex[:8]}"),
        handlers={
            "extract": extract_stand_in(stage.handler),
            "transform": lambda event, context: {"rows": {}},
            "load": lambda event, context: {"rows": {}, "fact_versions_added": {}},
        },
    )
    return deployment, stage


def _dag(deployment: Deployment) -> Any:
    from airflow.sdk import DAG

    from totes_airflow.operators import (
        IdempotentStepFunctionStartExecutionOperator,
        StepFunctionExecutionFailureSensor,
    )

    with DAG(
        dag_id=f"operator_test_{uuid.uuid4().hex[:8]}",
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        default_args={"aws_conn_id": None, "retries": 0},
    ) as dag:
        start = IdempotentStepFunctionStartExecutionOperator(
            task_id="start",
            state_machine_arn=deployment.state_machine_arn,
            state_machine_input=(
                '{"run_id": "{{ run_id }}", "window_start": "a", "window_end": "b", '
                '"full_scan": false}'
            ),
        )
        wait = StepFunctionExecutionFailureSensor(
            task_id="wait",
            execution_arn="{{ ti.xcom_pull(task_ids='start') }}",
            mode="reschedule",
            poke_interval=1,
        )
        start >> wait
    _register(dag)
    return dag


def _register(dag: Any) -> None:
    """Store the test DAG as the DAG processor would, which ``dag.test`` requires."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session
        )


def _executions(deployment: Deployment) -> list[dict[str, Any]]:
    listed = boto3.client("stepfunctions").list_executions(
        stateMachineArn=deployment.state_machine_arn
    )
    return list(listed["executions"])


def test_operator_refuses_a_fixed_name() -> None:
    from totes_airflow.operators import IdempotentStepFunctionStartExecutionOperator

    with pytest.raises(ValueError, match="does not take name"):
        IdempotentStepFunctionStartExecutionOperator(
            task_id="t", state_machine_arn="arn", name="fixed"
        )


def test_rerunning_a_run_reuses_its_execution(
    airflow_metadata: DbSettings, machine: tuple[Deployment, Stage]
) -> None:
    deployment, stage = machine
    dag = _dag(deployment)
    first = dag.test(logical_date=LOGICAL_DATE, run_after=RUN_AFTER)
    assert first.state == "success"
    second = dag.test(logical_date=LOGICAL_DATE, run_after=RUN_AFTER)
    assert second.state == "success"
    assert second.run_id == first.run_id
    executions = _executions(deployment)
    assert len(executions) == 1
    assert executions[0]["status"] == "SUCCEEDED"
    assert len(stage.events) == 1
    assert stage.events[0]["run_id"] == first.run_id


def test_failed_execution_fails_the_sensor_with_its_error_then_a_rerun_starts_afresh(
    airflow_metadata: DbSettings, machine: tuple[Deployment, Stage]
) -> None:
    deployment, stage = machine
    dag = _dag(deployment)
    stage.fail = True
    failed = dag.test(logical_date=LOGICAL_DATE, run_after=RUN_AFTER)
    assert failed.state == "failed"
    wait = failed.get_task_instance("wait")
    assert wait is not None
    assert wait.state == "failed"
    assert wait.try_number == 1  # a closed execution is not polled again
    stage.fail = False
    rerun = dag.test(logical_date=LOGICAL_DATE, run_after=RUN_AFTER)
    assert rerun.state == "success"
    assert rerun.run_id == failed.run_id
    statuses = {e["name"]: e["status"] for e in _executions(deployment)}
    first = next(name for name, status in statuses.items() if status == "FAILED")
    assert statuses == {first: "FAILED", f"{first}-r2": "SUCCEEDED"}

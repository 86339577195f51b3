"""Starting executions idempotently, against moto's real Step Functions API and a deployed copy
of our state machine whose stages are stand-ins (these tests are about names and states)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from totes.naming import ResourceNames
from totes_airflow.execution_names import execution_name
from totes_airflow.executions import (
    ExecutionAttemptsError,
    execution_arn,
    failure_reason,
    start_or_reuse,
)
from totes_dev.devstack.aws import MotoStack
from totes_dev.devstack.deploy import Deployment, deploy, extract_stand_in

INPUT = {"run_id": "r", "window_start": "a", "window_end": "b", "full_scan": False}


class Switch:
    """Stage behaviour the test controls: fail, succeed, or hold the execution RUNNING."""

    def __init__(self) -> None:
        self.fail = False
        self.release = threading.Event()
        self.release.set()
        self.calls = 0

    def handler(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.calls += 1
        self.release.wait(timeout=30)
        if self.fail:
            raise RuntimeError("stand-in stage failed")
        return {"rows": {}}


@pytest.fixture
def machine(moto_stack: MotoStack) -> Iterator[tuple[Deployment, Switch]]:
    switch = Switch()
    passthrough: dict[str, Any] = {"rows": {}}
    deployment = deploy(
        {},
        ResourceNames(environment=f"x{uuid.uuid4().hex[:8]}"),
        handlers={
            "extract": extract_stand_in(switch.handler),
            "transform": lambda event, context: passthrough,
            "load": lambda event, context: passthrough,
        },
    )
    yield deployment, switch
    switch.release.set()


def _wait(arn: str) -> str:
    sfn = boto3.client("stepfunctions")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = str(sfn.describe_execution(executionArn=arn)["status"])
        if status != "RUNNING":
            return status
        time.sleep(0.05)
    pytest.fail("execution still running after 30 s")


def _start(deployment: Deployment, run_id: str = "scheduled__2026-01-01T00:20:00+00:00") -> Any:
    return start_or_reuse(
        boto3.client("stepfunctions"),
        state_machine_arn=deployment.state_machine_arn,
        dag_id="totes_pipeline",
        run_id=run_id,
        execution_input=INPUT,
    )


def _executions(deployment: Deployment) -> list[str]:
    listed = boto3.client("stepfunctions").list_executions(
        stateMachineArn=deployment.state_machine_arn
    )
    return sorted(e["name"] for e in listed["executions"])


def test_execution_arn_is_built_from_the_machine_arn() -> None:
    machine = "arn:aws:states:eu-west-2:123456789012:stateMachine:totes-dev-pipeline"
    assert execution_arn(machine, "n") == (
        "arn:aws:states:eu-west-2:123456789012:execution:totes-dev-pipeline:n"
    )
    with pytest.raises(ValueError, match="not a state machine ARN"):
        execution_arn("arn:aws:sns:eu-west-2:1:topic", "n")


def test_first_start_names_the_execution_after_the_run(
    machine: tuple[Deployment, Switch],
) -> None:
    deployment, _ = machine
    started = _start(deployment)
    assert started.action == "started"
    assert started.name == execution_name("totes_pipeline", "scheduled__2026-01-01T00:20:00+00:00")
    assert started.arn == execution_arn(deployment.state_machine_arn, started.name)
    assert _wait(started.arn) == "SUCCEEDED"


def test_running_execution_is_reused(machine: tuple[Deployment, Switch]) -> None:
    deployment, switch = machine
    switch.release.clear()
    first = _start(deployment)
    again = _start(deployment)
    assert again.action == "reused"
    assert again.arn == first.arn
    switch.release.set()
    assert _wait(first.arn) == "SUCCEEDED"
    assert switch.calls == 1
    assert _executions(deployment) == [first.name]


def test_succeeded_execution_is_reused(machine: tuple[Deployment, Switch]) -> None:
    deployment, switch = machine
    first = _start(deployment)
    assert _wait(first.arn) == "SUCCEEDED"
    again = _start(deployment)
    assert again.action == "reused"
    assert again.arn == first.arn
    assert switch.calls == 1


def test_failed_execution_gets_a_fresh_attempt_which_is_then_reused(
    machine: tuple[Deployment, Switch],
) -> None:
    deployment, switch = machine
    switch.fail = True
    first = _start(deployment)
    assert _wait(first.arn) == "FAILED"
    switch.fail = False
    second = _start(deployment)
    assert second.action == "restarted"
    assert second.name == f"{first.name}-r2"
    assert second.previous_failures == (f"{first.name}: FAILED",)
    assert _wait(second.arn) == "SUCCEEDED"
    third = _start(deployment)
    assert third.action == "reused"
    assert third.arn == second.arn
    assert _executions(deployment) == sorted([first.name, second.name])


def test_runs_never_share_an_execution(machine: tuple[Deployment, Switch]) -> None:
    deployment, _ = machine
    one = _start(deployment, "scheduled__2026-01-01T00:20:00+00:00")
    two = _start(deployment, "scheduled__2026-01-01T00:40:00+00:00")
    assert one.arn != two.arn
    assert two.action == "started"


def test_running_out_of_attempts_is_a_clear_error(machine: tuple[Deployment, Switch]) -> None:
    deployment, switch = machine
    switch.fail = True
    client = boto3.client("stepfunctions")
    kwargs: dict[str, Any] = {
        "state_machine_arn": deployment.state_machine_arn,
        "dag_id": "totes_pipeline",
        "run_id": "manual__x",
        "execution_input": INPUT,
        "max_attempts": 2,
    }
    for _ in range(2):
        assert _wait(start_or_reuse(client, **kwargs).arn) == "FAILED"
    with pytest.raises(ExecutionAttemptsError, match=r"all 2 execution names of run manual__x"):
        start_or_reuse(client, **kwargs)


def test_failure_reason_keeps_the_lambda_error_message_not_its_stack_trace() -> None:
    import json

    described = {
        "name": "run-1",
        "status": "FAILED",
        "error": "SourceError",
        "cause": json.dumps(
            {
                "errorType": "SourceError",
                "errorMessage": "[extract] cannot connect to the source database",
                "stackTrace": ["Traceback (most recent call last):", "..."],
            }
        ),
    }
    assert failure_reason(described) == (
        "Step Functions execution run-1 FAILED: SourceError: "
        "[extract] cannot connect to the source database"
    )


def test_failure_reason_keeps_a_plain_cause() -> None:
    described = {"name": "run-2", "status": "TIMED_OUT", "cause": "took too long"}
    assert failure_reason(described) == (
        "Step Functions execution run-2 TIMED_OUT: no error given: took too long"
    )

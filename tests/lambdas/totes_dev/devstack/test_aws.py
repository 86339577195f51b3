"""The moto stack runs a real Step Functions execution into in-process handlers."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from totes_dev.devstack.aws import (
    MotoStack,
    create_lambda_role,
    register_handler,
    unregister_handler,
)


def _zip() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("handler.py", "")
    return buf.getvalue()


def _wait(sfn: Any, execution_arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return dict(described)
        time.sleep(0.05)
    pytest.fail("execution did not finish within 30 s")


@pytest.fixture
def two_state_machine(moto_stack: MotoStack) -> Any:
    calls: list[dict[str, Any]] = []

    def first(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(event)
        return {"doubled": event["value"] * 2}

    def second(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(event)
        if event["doubled"] > 10:
            raise ValueError(f"value {event['doubled']} is too large for table=demo")
        return {"result": event["doubled"] + 1}

    lam = boto3.client("lambda")
    role = create_lambda_role()
    arns = {}
    for name, handler in (("t-first", first), ("t-second", second)):
        register_handler(name, handler)
        lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": _zip()},
        )
        arns[name] = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    definition = {
        "StartAt": "First",
        "States": {
            "First": {"Type": "Task", "Resource": arns["t-first"], "Next": "Second"},
            "Second": {"Type": "Task", "Resource": arns["t-second"], "End": True},
        },
    }
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="t-two-states", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]
    yield sfn, arn, calls
    sfn.delete_state_machine(stateMachineArn=arn)
    for name in arns:
        lam.delete_function(FunctionName=name)
        unregister_handler(name)


def test_execution_chains_both_handlers(two_state_machine: Any) -> None:
    sfn, arn, calls = two_state_machine
    run = sfn.start_execution(stateMachineArn=arn, name="ok-run", input=json.dumps({"value": 3}))
    described = _wait(sfn, run["executionArn"])
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"result": 7}
    assert calls == [{"value": 3}, {"doubled": 6}]


def test_handler_exception_fails_the_execution(two_state_machine: Any) -> None:
    sfn, arn, _ = two_state_machine
    run = sfn.start_execution(stateMachineArn=arn, name="bad-run", input=json.dumps({"value": 9}))
    described = _wait(sfn, run["executionArn"])
    assert described["status"] == "FAILED"
    assert described["error"] == "ValueError"
    assert "value 18 is too large for table=demo" in described["cause"]

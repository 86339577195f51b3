"""Starting a Step Functions execution at most once per DAG run.

Airflow may run the start task again for the same run: a retry after a lost API response, a user
clearing the task, a backfill re-running a window. Each must end up with one live execution per
run, so the execution name is derived from the run and an existing execution is looked at before
anything new is started.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from totes_airflow.execution_names import execution_name

log = logging.getLogger(__name__)

REUSABLE = frozenset({"RUNNING", "SUCCEEDED", "PENDING_REDRIVE"})
# FAILED, TIMED_OUT and ABORTED executions are closed; a new attempt gets a new name.
MAX_ATTEMPTS = 20


class ExecutionAttemptsError(RuntimeError):
    """Every attempt name of a run is taken by a failed execution."""


@dataclass(frozen=True)
class StartedExecution:
    arn: str
    name: str
    action: str  # "started", "reused" or "restarted"
    previous_failures: tuple[str, ...] = ()


def failure_reason(described: dict[str, Any]) -> str:
    """One readable line from a closed execution's DescribeExecution answer.

    A Lambda error's cause is the runtime's JSON (type, message, stack trace); the message is the
    part a person needs, and our errors put step, table and key into it.
    """
    error = described.get("error") or "no error given"
    cause = described.get("cause") or ""
    try:
        payload = json.loads(cause)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("errorMessage"), str):
        cause = payload["errorMessage"]
    name = described.get("name") or described.get("executionArn", "execution")
    return f"Step Functions execution {name} {described.get('status')}: {error}: {cause}".strip()


def execution_arn(state_machine_arn: str, name: str) -> str:
    prefix, _, machine = state_machine_arn.partition(":stateMachine:")
    if not machine:
        raise ValueError(f"not a state machine ARN: {state_machine_arn}")
    return f"{prefix}:execution:{machine}:{name}"


def _status(client: Any, arn: str) -> str | None:
    try:
        return str(client.describe_execution(executionArn=arn)["status"])
    except client.exceptions.ExecutionDoesNotExist:
        return None


def start_or_reuse(
    client: Any,
    *,
    state_machine_arn: str,
    dag_id: str,
    run_id: str,
    execution_input: dict[str, Any] | str,
    max_attempts: int = MAX_ATTEMPTS,
) -> StartedExecution:
    """Start the run's execution, or return the one already running or finished successfully.

    When the run's latest execution FAILED, TIMED_OUT or was ABORTED, a fresh execution is started
    under the next attempt name (``...-r2``, ``-r3``) rather than redriven: a failed execution of
    this state machine always ends in its Fail state after the alert (Catch routes every error
    there), and a redrive resumes at the failed state, so it would only fail again. Every stage
    processes everything still pending, so a fresh execution finishes the work the failed one
    left. ``client`` is a boto3 Step Functions client.
    """
    body = execution_input if isinstance(execution_input, str) else json.dumps(execution_input)
    failures: list[str] = []
    for attempt in range(1, max_attempts + 1):
        name = execution_name(dag_id, run_id, attempt)
        arn = execution_arn(state_machine_arn, name)
        status = _status(client, arn)
        if status is None:
            try:
                started = client.start_execution(
                    stateMachineArn=state_machine_arn, name=name, input=body
                )
            except client.exceptions.ExecutionAlreadyExists:
                # Started by a concurrent try of this task since we looked: look again.
                status = _status(client, arn)
            else:
                action = "restarted" if failures else "started"
                log.info("Execution %s %s", name, action)
                return StartedExecution(str(started["executionArn"]), name, action, tuple(failures))
        if status in REUSABLE:
            log.info("Execution %s already exists (%s); reusing it", name, status)
            return StartedExecution(arn, name, "reused", tuple(failures))
        log.info("Execution %s ended %s; trying a fresh attempt", name, status)
        failures.append(f"{name}: {status}")
    raise ExecutionAttemptsError(
        f"all {max_attempts} execution names of run {run_id} of {dag_id} are taken by failed "
        f"executions: {', '.join(failures)}"
    )

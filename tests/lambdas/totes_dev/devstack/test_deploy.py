"""The state machine template, deployed to moto as Terraform deploys it to AWS, chains the three
stages, retries transient Lambda errors and turns any other error into an alert and a FAILED
execution. Stand-in handlers keep these tests about the state machine, not the stages."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import boto3
import pytest

from totes.lake import S3Lake
from totes.lock.lease import CycleLock
from totes.naming import ResourceNames
from totes_dev.devstack.aws import MotoStack
from totes_dev.devstack.deploy import (
    STATE_MACHINE_TEMPLATE,
    Deployment,
    deploy,
    extract_stand_in,
    read_alerts,
    render_template,
    state_machine_definition,
    subscribe_queue,
    template_placeholders,
)

INPUT = {
    "run_id": "scheduled__2024-11-25T23:20:00+00:00",
    "window_start": "2024-11-25T23:00:00+00:00",
    "window_end": "2024-11-25T23:20:00+00:00",
    "full_scan": False,
}


def _wait(execution_arn: str) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return dict(described)
        time.sleep(0.05)
    pytest.fail("execution did not finish within 60 s")


def _start(deployment: Deployment, name: str) -> str:
    started = boto3.client("stepfunctions").start_execution(
        stateMachineArn=deployment.state_machine_arn, name=name, input=json.dumps(INPUT)
    )
    return str(started["executionArn"])


def _run(deployment: Deployment, name: str) -> dict[str, Any]:
    return _wait(_start(deployment, name))


def _lock(deployment: Deployment) -> CycleLock:
    return CycleLock(S3Lake(deployment.ingestion_uri.removeprefix("s3://")))


class Stages:
    """Stand-in stage handlers that record what they were given and can be told to fail.

    The extract's fanned-out steps answer as the real ones do (a plan of two tables, one part
    per table) and are recorded in ``fanout``; its commit, which ends the extract step, is the
    ``extract`` call in ``calls``."""

    TABLES = ("staff", "sales_order")

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], str | None]] = []
        self.fanout: list[dict[str, Any]] = []
        self.failures: dict[str, list[Exception]] = {}
        self.seconds: dict[str, float] = {}

    def handler(self, stage: str) -> Callable[[dict[str, Any], Any], Any]:
        import os

        def run(event: dict[str, Any], context: Any) -> dict[str, Any]:
            self.calls.append((stage, event, os.environ.get("TOTES_INGESTION_URI")))
            time.sleep(self.seconds.get(stage, 0))
            pending = self.failures.get(stage)
            if pending:
                raise pending.pop(0)
            return {"stage": stage, "rows": {"sales_order": 3}}

        return run

    def handlers(self) -> dict[str, Callable[[dict[str, Any], Any], Any]]:
        stages = {stage: self.handler(stage) for stage in ("transform", "load")}
        stages["extract"] = extract_stand_in(self.handler("extract"), self.TABLES, self.fanout)
        return stages


@pytest.fixture
def names(moto_stack: MotoStack) -> ResourceNames:
    """A fresh environment name, so these stand-ins never replace the real stages' handlers."""
    return ResourceNames(environment=f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture
def stages(names: ResourceNames) -> tuple[Stages, Deployment, str]:
    recorder = Stages()
    deployment = deploy({"PG_HOST": "source.invalid"}, names, handlers=recorder.handlers())
    queue_url = subscribe_queue(deployment.alerts_topic_arn, f"{names.alerts_topic}-inbox")
    return recorder, deployment, queue_url


def test_template_is_json_with_the_placeholders_terraform_fills() -> None:
    template = STATE_MACHINE_TEMPLATE.read_text(encoding="utf-8")
    json.loads(template)
    assert template_placeholders(template) == {
        "extract_function_arn",
        "transform_function_arn",
        "load_function_arn",
        "lock_function_arn",
        "alerts_topic_arn",
    }


def test_rendering_fills_placeholders_and_leaves_jsonpath_alone() -> None:
    template = '{"a": "${x}", "b.$": "$$.Execution.Name", "c.$": "$.y"}'
    rendered = render_template(template, {"x": "1"})
    assert json.loads(rendered) == {"a": "1", "b.$": "$$.Execution.Name", "c.$": "$.y"}
    with pytest.raises(KeyError, match="alerts_topic_arn"):
        render_template(STATE_MACHINE_TEMPLATE.read_text(encoding="utf-8"), {})
    definition = json.loads(
        state_machine_definition(
            {"extract": "arn:e", "transform": "arn:t", "load": "arn:l", "lock": "arn:k"},
            "arn:topic",
        )
    )
    assert definition["States"]["Transform"]["Resource"] == "arn:t"
    assert definition["States"]["NotifyFailure"]["Parameters"]["TopicArn"] == "arn:topic"


@pytest.mark.parametrize("template", ['{"a": "%{ if x }"}', '{"a": "$${x}"}', '{"a": "${x.y}"}'])
def test_template_syntax_beyond_plain_placeholders_is_refused(template: str) -> None:
    with pytest.raises(ValueError, match="state machine template"):
        render_template(template, {"x": "1"})


def test_deploy_uses_terraform_names_and_function_environment(
    names: ResourceNames, stages: tuple[Stages, Deployment, str]
) -> None:
    _, deployment, _ = stages
    assert deployment.state_machine_arn.endswith(f":stateMachine:{names.state_machine}")
    assert deployment.function_arns["extract"].endswith(
        f":function:{names.lambda_function('extract')}"
    )
    config = boto3.client("lambda").get_function_configuration(
        FunctionName=deployment.function_arns["extract"]
    )
    assert config["Handler"] == "totes.extract.handler.lambda_handler"
    assert config["Runtime"] == "python3.12"
    variables = config["Environment"]["Variables"]
    assert variables["PG_HOST"] == "source.invalid"
    assert variables["TOTES_INGESTION_URI"] == deployment.ingestion_uri
    assert deployment.ingestion_uri == f"s3://{names.ingestion_bucket}"


def test_execution_chains_the_stages_and_outputs_a_summary(
    stages: tuple[Stages, Deployment, str],
) -> None:
    recorder, deployment, queue_url = stages
    described = _run(deployment, "ok-run")
    assert described["status"] == "SUCCEEDED", described
    assert [stage for stage, _, _ in recorder.calls] == ["extract", "transform", "load"]
    # The extract is fanned out: the snapshot's holder gets the execution input and its own
    # execution, the Map state runs one worker per planned table, and the commit gets their
    # parts. Every step of one attempt shares its id.
    steps = {event["action"]: event for event in recorder.fanout}
    held = steps["hold_snapshot"]
    assert {name: held[name] for name in INPUT} == INPUT
    assert held["execution_arn"] == described["executionArn"]
    attempt = held["attempt"]
    assert {event["attempt"] for event in recorder.fanout} == {attempt}
    tables = sorted(e["table"] for e in recorder.fanout if e["action"] == "extract_table")
    assert tables == sorted(Stages.TABLES)
    commit = recorder.calls[0][1]
    assert commit["attempt"] == attempt
    assert sorted(part["table"] for part in commit["parts"]) == sorted(Stages.TABLES)
    # Transform and load get the execution's state, with the lease the execution holds; every
    # stage runs with the function's environment.
    assert recorder.calls[1][1]["lock"]["holder"] == "ok-run"
    assert {uri for _, _, uri in recorder.calls} == {deployment.ingestion_uri}
    output = json.loads(described["output"])
    assert output["run_id"] == INPUT["run_id"]
    assert output["window_end"] == INPUT["window_end"]
    assert output["extract"] == {"stage": "extract", "rows": {"sales_order": 3}}
    assert output["load"]["stage"] == "load"
    assert output["finished_at"] > INPUT["window_end"]
    assert read_alerts(queue_url, wait_seconds=0) == []


def test_transient_lambda_errors_are_retried(stages: tuple[Stages, Deployment, str]) -> None:
    recorder, deployment, _ = stages
    # The error name Step Functions sees for a throttled Lambda service call.
    throttled = type("Lambda.TooManyRequestsException", (Exception,), {})
    recorder.failures["transform"] = [throttled("Rate exceeded")]
    described = _run(deployment, "throttled-run")
    assert described["status"] == "SUCCEEDED", described
    called = [stage for stage, _, _ in recorder.calls]
    assert called == ["extract", "transform", "transform", "load"]


def test_stage_error_alerts_and_fails_the_execution(stages: tuple[Stages, Deployment, str]) -> None:
    recorder, deployment, queue_url = stages

    class SourceError(Exception):
        pass

    recorder.failures["extract"] = [SourceError("[extract] cannot connect to the source database")]
    described = _run(deployment, "broken-run")
    assert described["status"] == "FAILED"
    # Not retried: only transient Lambda service errors are.
    assert [stage for stage, _, _ in recorder.calls] == ["extract"]
    assert described["error"] == "SourceError"
    assert "cannot connect to the source database" in described["cause"]
    alerts = read_alerts(queue_url)
    assert len(alerts) == 1
    assert alerts[0]["subject"] == "Terrific Totes pipeline failed"
    message = alerts[0]["message"]
    assert "Pipeline execution broken-run failed." in message
    assert f"Run: {INPUT['run_id']}" in message
    assert f"Window: {INPUT['window_start']} to {INPUT['window_end']}" in message
    assert "Error: SourceError" in message
    assert "cannot connect to the source database" in message


def test_redeploying_updates_in_place(
    names: ResourceNames, stages: tuple[Stages, Deployment, str]
) -> None:
    recorder, deployment, _ = stages
    again = deploy({"PG_HOST": "elsewhere.invalid"}, names, handlers=recorder.handlers())
    assert again.state_machine_arn == deployment.state_machine_arn
    assert again.function_arns == deployment.function_arns
    config = boto3.client("lambda").get_function_configuration(
        FunctionName=deployment.function_arns["load"]
    )
    assert config["Environment"]["Variables"]["PG_HOST"] == "elsewhere.invalid"


def test_two_executions_at_once_run_their_stages_one_after_the_other(
    stages: tuple[Stages, Deployment, str],
) -> None:
    recorder, deployment, queue_url = stages
    recorder.seconds["extract"] = 1.0  # long enough for the second execution to start meanwhile
    arns = [_start(deployment, name) for name in ("first", "second")]
    described = [_wait(arn) for arn in arns]
    assert [d["status"] for d in described] == ["SUCCEEDED", "SUCCEEDED"], described
    # The extract's commit carries no lease; the stages after it name their execution's.
    order = [(stage, event.get("lock", {}).get("holder")) for stage, event, _ in recorder.calls]
    first_holder = order[1][1]
    second_holder = "second" if first_holder == "first" else "first"
    assert order == [
        (stage, None if stage == "extract" else holder)
        for holder in (first_holder, second_holder)
        for stage in ("extract", "transform", "load")
    ]
    record = _lock(deployment).current()
    assert record is not None
    assert (record.state, record.holder) == ("released", second_holder)
    assert read_alerts(queue_url, wait_seconds=0) == []


def test_an_execution_that_waits_too_long_for_the_lock_ends_as_skipped(
    names: ResourceNames,
) -> None:
    recorder = Stages()
    # The lock function waits TOTES_LOCK_WAIT_SECONDS (5 minutes on AWS): 1 s here.
    deployment = deploy(
        {"PG_HOST": "source.invalid", "TOTES_LOCK_WAIT_SECONDS": "1"},
        names,
        handlers=recorder.handlers(),
    )
    queue_url = subscribe_queue(deployment.alerts_topic_arn, f"{names.alerts_topic}-late")
    _lock(deployment).acquire("totes-run:elsewhere:42:abcd", timedelta(hours=1))
    described = _run(deployment, "late-run")
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["skipped"] is True
    assert "another cycle is running: totes-run:elsewhere:42:abcd holds" in output["skipped_reason"]
    assert output["window_end"] == INPUT["window_end"]
    assert recorder.calls == []
    assert read_alerts(queue_url, wait_seconds=0) == []


def test_a_lease_whose_execution_has_ended_is_taken_over_at_once(
    stages: tuple[Stages, Deployment, str],
) -> None:
    recorder, deployment, _ = stages
    finished = _run(deployment, "finished-run")
    assert finished["status"] == "SUCCEEDED"
    # A lease left behind as by an execution that was aborted: long, and its holder is gone.
    _lock(deployment).acquire(
        "finished-run", timedelta(hours=1), execution_arn=finished["executionArn"]
    )
    started = time.monotonic()
    described = _run(deployment, "next-run")
    assert described["status"] == "SUCCEEDED", described
    assert time.monotonic() - started < 30  # no wait for the lease to lapse
    assert [event["lock"]["holder"] for _, event, _ in recorder.calls[-2:]] == ["next-run"] * 2


def test_a_failed_stage_gives_the_lock_back_before_alerting(
    stages: tuple[Stages, Deployment, str],
) -> None:
    recorder, deployment, queue_url = stages
    recorder.failures["load"] = [RuntimeError("[load] warehouse unreachable")]
    described = _run(deployment, "failing-run")
    assert described["status"] == "FAILED"
    assert described["error"] == "RuntimeError"  # the stage's error, not the release's
    record = _lock(deployment).current()
    assert record is not None
    assert (record.state, record.holder) == ("released", "failing-run")
    (alert,) = read_alerts(queue_url)
    assert "warehouse unreachable" in alert["message"]

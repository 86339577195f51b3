"""Terraform and the local stack must deploy the same thing: the same ASL template with the same
placeholders, the same resource names and handlers. ``terraform`` itself is not available here,
so the .tf files are read as text."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from totes_dev.devstack.deploy import (
    FUNCTIONS,
    HANDLERS,
    STATE_MACHINE_TEMPLATE,
    template_placeholders,
)

from totes.naming import ResourceNames

INFRA = Path(__file__).resolve().parents[2] / "infra"
WORKFLOW = INFRA.parent / ".github" / "workflows" / "ci.yml"


def _tf() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(INFRA.glob("*.tf")))


def _block(text: str, header: str) -> str:
    """The body of the first block whose header line matches ``header`` (balanced braces)."""
    start = text.index(header)
    depth = 0
    for index in range(text.index("{", start), len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[start : index + 1]
    raise AssertionError(f"unbalanced block {header}")


def _locals(environment: str) -> dict[str, str]:
    """The string locals, evaluated for ``environment`` (only ``${local.x}`` and
    ``${var.environment}`` interpolation, which is all the names use)."""
    body = _block((INFRA / "locals.tf").read_text(encoding="utf-8"), "locals {")
    raw = dict(re.findall(r'^\s*(\w+)\s*=\s*"([^"]*)"\s*$', body, flags=re.MULTILINE))
    values: dict[str, str] = {}

    def evaluate(text: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            kind, name = match.group(1), match.group(2)
            if kind == "var":
                assert name == "environment", name
                return environment
            return values.get(name) or evaluate(raw[name])

        return re.sub(r"\$\{(local|var)\.(\w+)\}", substitute, text)

    for name, text in raw.items():
        values[name] = evaluate(text)
    return values


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_resource_names_match_the_local_stack(environment: str) -> None:
    names = ResourceNames(environment)
    values = _locals(environment)
    assert values["ingestion_bucket"] == names.ingestion_bucket
    assert values["processed_bucket"] == names.processed_bucket
    assert values["alerts_topic"] == names.alerts_topic
    assert values["state_machine"] == names.state_machine
    assert values["source_secret"] == names.source_secret
    assert values["warehouse_secret"] == names.warehouse_secret
    # Function names: "${local.prefix}-${stage}" for each stage.
    assert f"{values['prefix']}-extract" == names.lambda_function("extract")
    assert '"${local.prefix}-${stage}"' in (INFRA / "locals.tf").read_text(encoding="utf-8")


def test_lambda_handlers_match_the_local_stack() -> None:
    body = _block((INFRA / "locals.tf").read_text(encoding="utf-8"), "lambda_handlers = {")
    handlers = dict(re.findall(r'^\s*(\w+)\s*=\s*"([^"]+)"', body, flags=re.MULTILINE))
    assert handlers == HANDLERS
    assert set(handlers) == set(FUNCTIONS)


def test_state_machine_uses_the_one_template_with_every_placeholder() -> None:
    tf = _tf()
    machine = _block(tf, 'resource "aws_sfn_state_machine" "pipeline"')
    assert 'templatefile("${path.module}/state_machine.asl.json"' in machine
    assert STATE_MACHINE_TEMPLATE == INFRA / "state_machine.asl.json"
    arguments = _block(machine, 'state_machine.asl.json", {')
    passed = set(re.findall(r"^\s*(\w+)\s*=", arguments, re.MULTILINE))
    assert passed == template_placeholders(STATE_MACHINE_TEMPLATE.read_text(encoding="utf-8"))
    # No second copy of the definition anywhere in infra/.
    assert len(list(INFRA.glob("*.asl.json"))) == 1
    assert '"StartAt"' not in tf


def test_state_machine_retries_transient_errors_and_alerts_before_failing() -> None:
    definition = json.loads(STATE_MACHINE_TEMPLATE.read_text(encoding="utf-8"))
    states = definition["States"]
    transient = {
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
    }
    for stage in ("Extract", "Transform", "Load"):
        retried = {e for retry in states[stage]["Retry"] for e in retry["ErrorEquals"]}
        # A lost commit race is retried at once by the extract, the only stage that can lose one
        # (a transform carries on from the winner's batch; the load is serialised by the ledger).
        assert retried == transient | ({"CommitConflictError"} if stage == "Extract" else set())
        assert all(retry["BackoffRate"] > 1 for retry in states[stage]["Retry"])
        assert states[stage]["Catch"] == [
            {
                "ErrorEquals": ["States.ALL"],
                "ResultPath": "$.error",
                "Next": "ReleaseLockAfterFailure",
            }
        ]
    assert states["ReleaseLockAfterFailure"]["Next"] == "NotifyFailure"
    assert states["ReleaseLockAfterFailure"]["ResultPath"] is None  # keeps $.error
    assert states["NotifyFailure"]["Resource"] == "arn:aws:states:::sns:publish"
    assert states["NotifyFailure"]["Next"] == "Failed"
    assert states["Failed"]["Type"] == "Fail"


def test_state_machine_holds_the_cycle_lock_around_the_stages() -> None:
    definition = json.loads(STATE_MACHINE_TEMPLATE.read_text(encoding="utf-8"))
    states = definition["States"]
    assert definition["StartAt"] == "AcquireLock"
    acquire = states["AcquireLock"]
    assert acquire["Resource"] == "${lock_function_arn}"
    # The lease lasts as long as an execution may run.
    assert acquire["Parameters"]["ttl_seconds"] == definition["TimeoutSeconds"]
    # Being busy is an answer the state machine branches on, not an error to retry.
    assert acquire["Next"] == "LockAcquired"
    assert all("CycleBusyError" not in r["ErrorEquals"] for r in acquire["Retry"])
    assert states["LockAcquired"]["Choices"] == [
        {"Variable": "$.lock.acquired", "BooleanEquals": True, "Next": "Extract"}
    ]
    assert states["LockAcquired"]["Default"] == "AnotherCycleRunning"
    skipped = states["AnotherCycleRunning"]
    assert skipped["Parameters"]["skipped"] is True
    assert skipped["Parameters"]["skipped_reason.$"] == "$.lock.reason"
    assert skipped["End"] is True
    assert states["Load"]["Next"] == "ReleaseLock"
    assert states["ReleaseLock"]["Next"] == "Summary"
    for release in ("ReleaseLock", "ReleaseLockAfterFailure"):
        assert states[release]["Parameters"] == {
            "action": "release",
            "holder.$": "$$.Execution.Name",
        }


def test_iam_is_least_privilege() -> None:
    tf = _tf()
    # Every granted action is concrete, except prefixes from AWS's MWAA execution-role policy
    # (the TLS-only bucket policy denies s3:*, which is not a grant).
    granted = re.findall(r'"([^"]+)"', " ".join(re.findall(r"actions\s*=\s*\[[^\]]*\]", tf)))
    wildcards = {action for action in granted if "*" in action}
    assert wildcards == {"kms:GenerateDataKey*", "s3:GetObject*", "s3:GetBucket*", "s3:List*"}
    machine_policy = _block(tf, 'data "aws_iam_policy_document" "state_machine"')
    assert sorted(re.findall(r'actions\s*=\s*\["([^"]+)"\]', machine_policy)) == [
        "lambda:InvokeFunction",
        "sns:Publish",
    ]
    mwaa_policy = _block(tf, 'data "aws_iam_policy_document" "mwaa"')
    states_actions = set(re.findall(r'"(states:\w+)"', mwaa_policy))
    assert states_actions == {"states:StartExecution", "states:DescribeExecution"}
    lambda_policy = _block(tf, 'data "aws_iam_policy_document" "lambda"')
    assert "s3:DeleteObject" not in lambda_policy
    assert 'extract = ["source"], transform = [], load = ["warehouse"]' in lambda_policy


def test_no_secret_values_in_terraform() -> None:
    tf = _tf()
    versions = re.findall(r'resource "aws_secretsmanager_secret_version" "(\w+)"', tf)
    assert versions == ["airflow_variable"]  # ARNs for the DAG, not credentials
    assert not re.search(r"(?i)password\s*=", tf)
    assert not re.search(r"PG_PASSWORD\w*\s*=", tf)
    backend = _block((INFRA / "versions.tf").read_text(encoding="utf-8"), 'backend "s3"')
    assert backend == 'backend "s3" {}'


def test_buckets_are_versioned_encrypted_and_private() -> None:
    storage = (INFRA / "storage.tf").read_text(encoding="utf-8")
    for resource in (
        "aws_s3_bucket_versioning",
        "aws_s3_bucket_server_side_encryption_configuration",
        "aws_s3_bucket_public_access_block",
    ):
        assert f'resource "{resource}" "lake"' in storage
    assert storage.count("= true") >= 4


def test_alarms_and_logs_cover_every_stage() -> None:
    tf = _tf()
    assert 'resource "aws_cloudwatch_log_group" "lambda"' in tf
    assert '"ExecutionsFailed"' in tf
    errors = _block(tf, 'resource "aws_cloudwatch_metric_alarm" "lambda_errors"')
    assert "for_each            = aws_lambda_function.stage" in errors
    assert "alarm_actions       = [aws_sns_topic.alerts.arn]" in errors
    # Overlapping executions are serialised by the cycle lock, not by reserved concurrency,
    # which a new account's quota would refuse.
    assert "reserved_concurrent_executions" not in re.sub(r"#[^\n]*", "", tf)


def test_ci_runs_the_tests_on_both_pythons_and_deploys_from_main() -> None:
    workflow = WORKFLOW.read_text(encoding="utf-8")
    assert re.search(r'python-version:\s*\["3\.11",\s*"3\.12"\]', workflow)
    assert "make test" in workflow
    assert "postgresql" in workflow
    assert "id-token: write" in workflow
    for step in ("terraform fmt -check", "terraform validate", "terraform plan", "terraform apply"):
        assert step in workflow
    assert "refs/heads/main" in workflow


def _bare(label: str) -> str:
    return label.strip('"')


def _declared() -> dict[str, set[str]]:
    """What the .tf files declare, parsed as HCL: resources, data sources, variables, locals,
    modules."""
    import hcl2

    declared: dict[str, set[str]] = {"resource": set(), "data": set(), "var": set(), "local": set()}
    for path in sorted(INFRA.glob("*.tf")):
        with path.open(encoding="utf-8") as handle:
            document = hcl2.load(handle)  # a syntax error fails here, naming the file
        for section in ("resource", "data"):
            for block in document.get(section, []):
                for kind, named in block.items():
                    declared[section] |= {f"{_bare(kind)}.{_bare(name)}" for name in named}
        for block in document.get("variable", []):
            declared["var"] |= {_bare(name) for name in block}
        for block in document.get("locals", []):
            declared["local"] |= {_bare(name) for name in block if not name.startswith("__")}
    return declared


def test_every_reference_resolves_to_a_declaration() -> None:
    """The part of ``terraform validate`` that needs no provider download: the files parse as
    HCL and every ``aws_x.y``, ``data.x.y``, ``var.x`` and ``local.x`` they use is declared."""
    declared = _declared()
    text = re.sub(r"#[^\n]*", "", _tf())
    used = {
        "resource": set(re.findall(r"(?<![\w.])(aws_\w+\.\w+)", text)),
        "data": set(re.findall(r"\bdata\.(\w+\.\w+)", text)),
        "var": set(re.findall(r"\bvar\.(\w+)", text)),
        "local": set(re.findall(r"\blocal\.(\w+)", text)),
    }
    for kind, names in used.items():
        assert names <= declared[kind], f"undeclared {kind}: {sorted(names - declared[kind])}"
    assert declared["resource"], "no resources parsed"

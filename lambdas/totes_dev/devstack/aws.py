"""A moto server on 127.0.0.1 standing in for AWS: S3, Step Functions (really executing our state
machine), Lambda (dispatched to our own handler functions), SNS, SQS and Secrets Manager.

Stock moto without Docker only echoes a Lambda's payload, so ``LambdaSimpleBackend.invoke`` is
patched to call the registered Python handler with a Lambda context object, as the runtime
would: a handler function in this process, or one that runs a built artifact in a process of its
own (``totes_dev.devstack.lambda_runtime``). A handler exception comes back as an ``Unhandled``
function error, so a Step Functions execution fails exactly as it would on AWS.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import traceback
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from totes.naming import ResourceNames
from totes_dev.devstack.postgres import free_port

REGION = "eu-west-2"
ACCOUNT_ID = "123456789012"

Handler = Callable[[dict[str, Any], Any], Any]

_HANDLERS: dict[str, Handler] = {}
_HANDLERS_LOCK = threading.Lock()
_PATCHED = False


def register_handler(function_name: str, handler: Handler) -> None:
    """Route invocations of the Lambda ``function_name`` to ``handler(event, context)``."""
    with _HANDLERS_LOCK:
        _HANDLERS[function_name] = handler


def unregister_handler(function_name: str) -> None:
    with _HANDLERS_LOCK:
        _HANDLERS.pop(function_name, None)


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of the Lambda runtime's context object that handlers and Powertools read."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    timeout_seconds: float = 900.0
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000)


class FunctionError(Exception):
    """A handler that ran in a runtime of its own failed; ``document`` is the error that runtime
    reported (``errorType``, ``errorMessage``, ``stackTrace``), passed on unchanged."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = dict(document)
        super().__init__(f"{self.document.get('errorType')}: {self.document.get('errorMessage')}")


def _error_document(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, FunctionError):
        return exc.document
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def _function_name(name_or_arn: str) -> str:
    if ":function:" in name_or_arn:
        return name_or_arn.split(":function:", 1)[1].split(":", 1)[0]
    return name_or_arn


def _patch_lambda_invoke() -> None:
    global _PATCHED
    if _PATCHED:
        return
    from moto.awslambda_simple.models import LambdaSimpleBackend

    stock_invoke = LambdaSimpleBackend.invoke

    def invoke(
        self: LambdaSimpleBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> str | bytes | None:
        with _HANDLERS_LOCK:
            handler = _HANDLERS.get(_function_name(function_name))
        if handler is None:
            return stock_invoke(self, function_name, qualifier, body, headers, response_headers)
        event = json.loads(body) if body else {}
        try:
            result = handler(event, LambdaContext(_function_name(function_name)))
        except Exception as exc:  # the Lambda runtime reports every exception this way
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(_error_document(exc)).encode()
        return json.dumps(result).encode()

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]
    _PATCHED = True


def _post(url: str, body: bytes) -> None:
    """POST to the local moto server's own API (its URL is built here, never taken from input)."""
    request = urllib.request.Request(  # noqa: S310
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:  # noqa: S310
        response.read()


@dataclass
class MotoStack:
    """A running moto server and the environment that points boto3 at it."""

    endpoint: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    _server: Any = None

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        _post(f"{self.endpoint}/moto-api/reset", b"")


def create_lambda_role(name: str = "totes-lambda") -> str:
    """moto checks that a function's role exists and trusts Lambda, as IAM would."""
    import boto3

    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam = boto3.client("iam")
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        return str(
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
                "Arn"
            ]
        )


def aws_environment(endpoint: str, port: int) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        # The Step Functions interpreter calls Lambda at localhost:$MOTO_PORT.
        "MOTO_PORT": str(port),
    }


def start_moto(env: Mapping[str, str] | None = None) -> MotoStack:
    """Start a moto server in this process and point this process's boto3 at it."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    _patch_lambda_invoke()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    stack_env = aws_environment(endpoint, port)
    os.environ.update(stack_env)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    config = json.dumps(
        {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    ).encode()
    _post(f"{endpoint}/moto-api/config", config)
    return MotoStack(endpoint, port, stack_env, server)


@contextlib.contextmanager
def moto_server() -> Iterator[MotoStack]:
    stack = start_moto()
    try:
        yield stack
    finally:
        stack.stop()


def provision(
    names: ResourceNames | None = None, *, secrets: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, str]:
    """Create the buckets, alerts topic and secrets a deployed environment has; return their ids."""
    import boto3

    names = names or ResourceNames()
    s3 = boto3.client("s3")
    for bucket in (names.ingestion_bucket, names.processed_bucket):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    topic_arn = boto3.client("sns").create_topic(Name=names.alerts_topic)["TopicArn"]
    created = {
        "ingestion_uri": f"s3://{names.ingestion_bucket}",
        "processed_uri": f"s3://{names.processed_bucket}",
        "alerts_topic_arn": str(topic_arn),
    }
    sm = boto3.client("secretsmanager")
    for secret_name, values in (secrets or {}).items():
        sm.create_secret(Name=secret_name, SecretString=json.dumps(dict(values)))
    return created

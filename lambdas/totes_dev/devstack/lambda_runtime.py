"""Built functions on the local stack, run the way Lambda runs them.

Each invocation is a fresh process of the Lambda runtime's Python (a cold start every time),
started with ``-I -S``: no site-packages, no ``PYTHON*`` variable, nothing of the development
environment on the path, only the function's unzipped code zip and its layers, in Lambda's order.
Its environment is what Lambda would give it and nothing of this process's: the variables
Terraform configures on the function, those the Lambda service sets (handler, function name,
region, credentials of the role, ``TZ``...), and, because this is the local stack, the endpoint
of the moto server standing in for AWS. A handler's exception comes back as the runtime's error
document, so a Step Functions execution fails as on AWS; whatever the process writes goes to
:attr:`ArtifactRuntime.logs`, between the ``START``/``END``/``REPORT`` lines CloudWatch shows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from totes_dev.devstack.aws import FunctionError, Handler
from totes_dev.package import plan, zips
from totes_dev.package.interpreter import runtime_python, uv_command
from totes_dev.package.manifest import Manifest

BOOTSTRAP = Path(__file__).with_name("lambda_bootstrap.py")

# What the Lambda service gives every function from its role and region; on the local stack
# these come from the moto server's environment, with the endpoint that stands in for AWS.
FROM_THE_SERVICE = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


@dataclass(frozen=True)
class ColdStart:
    init_ms: float  # importing the handler module, as Lambda's "Init Duration" counts it
    process_ms: float  # the whole process: interpreter start, init, exit


@dataclass(frozen=True)
class Invocation:
    function_name: str
    request_id: str
    init_ms: float | None
    duration_ms: float | None
    error: dict[str, Any] | None


class ArtifactRuntime:
    """The built functions of one manifest, unzipped once, invoked in processes of their own."""

    def __init__(self, built: Manifest, *, python: Path | None = None) -> None:
        self.built = built
        self.python = python or runtime_python(uv_command())
        self.logs: dict[str, list[str]] = {}  # log group name -> lines
        self.invocations: list[Invocation] = []
        self._lock = threading.Lock()
        self._directory: Path | None = None
        self._unpacked: dict[str, Path] = {}

    # --- unpacking -----------------------------------------------------------------------

    def __enter__(self) -> ArtifactRuntime:
        self._directory = Path(tempfile.mkdtemp(prefix="totes-lambda-"))
        for name, layer in self.built.layers.items():
            self._unpacked[f"layer:{name}"] = self._unzip(layer.zip, f"layers/{name}")
        for name, function in self.built.functions.items():
            self._unpacked[f"function:{name}"] = self._unzip(function.zip, f"functions/{name}")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def _unzip(self, archive: Path, where: str) -> Path:
        assert self._directory is not None, "use ArtifactRuntime as a context manager"
        target = self._directory / where
        zips.extract(archive, target)
        return target

    def task_root(self, function: str) -> Path:
        return self._unpacked[f"function:{function}"]

    def layer_paths(self, function: str) -> list[Path]:
        """Each layer's ``python/`` in the function's order: Lambda unzips them into one
        ``/opt`` in that order; the build checked that no two of them hold the same file."""
        layers = self.built.functions[function].layers
        return [
            self._unpacked[f"layer:{layer}"] / plan.LAYER_PREFIX.rstrip("/") for layer in layers
        ]

    # --- one invocation ------------------------------------------------------------------

    def environment(
        self,
        function: str,
        configured: Mapping[str, str],
        context: Any,
        *,
        home: Path,
        log_stream: str,
    ) -> dict[str, str]:
        service = {name: os.environ[name] for name in FROM_THE_SERVICE if name in os.environ}
        reserved = {
            "_HANDLER": self.built.functions[function].handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{plan.RUNTIME}",
            "AWS_LAMBDA_FUNCTION_NAME": context.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(context.memory_limit_in_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": context.function_version,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": context.log_group_name,
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            "LAMBDA_TASK_ROOT": str(self.task_root(function)),
            "TZ": ":UTC",
            "LANG": "en_US.UTF-8",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            # An empty home: no AWS configuration or credentials file of this machine.
            "HOME": str(home),
        }
        return {**configured, **service, **reserved}

    def _run(
        self, function: str, request: dict[str, Any], environment: Mapping[str, str], work: Path
    ) -> tuple[dict[str, Any] | None, list[str], float, bool]:
        request_path = work / "request.json"
        request["response_path"] = str(work / "response.json")
        request["task_root"] = str(self.task_root(function))
        request["layer_paths"] = [str(p) for p in self.layer_paths(function)]
        request["handler"] = self.built.functions[function].handler
        request_path.write_text(json.dumps(request), encoding="utf-8")
        command = [str(self.python), "-I", "-S", "-B", "-u", str(BOOTSTRAP), str(request_path)]
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            env=dict(environment),
            cwd=self.task_root(function),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        timed_out = False
        try:
            output, _ = process.communicate(timeout=float(request["timeout_seconds"]))
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            timed_out = True
        process_ms = (time.perf_counter() - started) * 1000
        lines = output.decode("utf-8", errors="replace").splitlines()
        response_path = Path(request["response_path"])
        response = json.loads(response_path.read_text("utf-8")) if response_path.exists() else None
        return response, lines, process_ms, timed_out

    def invoke(self, function: str, event: Any, context: Any, configured: Mapping[str, str]) -> Any:
        """Run ``function``'s handler on ``event``; its result, or :class:`FunctionError`."""
        timeout = float(getattr(context, "timeout_seconds", 900.0))
        request_id = str(context.aws_request_id)
        log_stream = _log_stream()
        fields = {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": request_id,
            "log_group_name": context.log_group_name,
            "log_stream_name": log_stream,
        }
        with tempfile.TemporaryDirectory(dir=self._directory) as directory:
            work = Path(directory)
            (work / "home").mkdir()
            environment = self.environment(
                function, configured, context, home=work / "home", log_stream=log_stream
            )
            request = {"event": event, "context": fields, "timeout_seconds": timeout}
            response, lines, process_ms, timed_out = self._run(function, request, environment, work)
        if timed_out:
            error: dict[str, Any] | None = {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {request_id} Error: Task timed out after "
                f"{timeout:.2f} seconds",
            }
        elif response is None:
            error = {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"RequestId: {request_id} Error: Runtime exited without an answer",
            }
        else:
            error = response.get("error")
        init_ms = None if response is None else response.get("init_ms")
        duration_ms = None if response is None else response.get("duration_ms")
        report = f"REPORT RequestId: {request_id}\tDuration: {duration_ms or process_ms:.2f} ms"
        if response is not None:
            report += f"\tMemory Size: {context.memory_limit_in_mb} MB"
            report += f"\tMax Memory Used: {response.get('max_memory_mb')} MB"
        if init_ms is not None:
            report += f"\tInit Duration: {init_ms:.2f} ms"
        with self._lock:
            self.logs.setdefault(context.log_group_name, []).extend(
                [
                    f"START RequestId: {request_id} Version: {context.function_version}",
                    *lines,
                    f"END RequestId: {request_id}",
                    report,
                ]
            )
            self.invocations.append(
                Invocation(context.function_name, request_id, init_ms, duration_ms, error)
            )
        if error is not None:
            raise FunctionError(error)
        return response["result"] if response is not None else None

    def handler(self, function: str, configured: Mapping[str, str]) -> Handler:
        """A callable for :func:`totes_dev.devstack.aws.register_handler` that runs ``function``
        from its artifact with ``configured`` as the function's environment."""
        frozen = dict(configured)

        def run(event: dict[str, Any], context: Any) -> Any:
            return self.invoke(function, event, context, frozen)

        return run

    def cold_start(self, function: str) -> ColdStart:
        """Start ``function`` from its artifact and import its handler, as a cold start does."""
        with tempfile.TemporaryDirectory(dir=self._directory) as directory:
            work = Path(directory)
            (work / "home").mkdir()
            context = _ColdStartContext(f"coldstart-{function}")
            environment = self.environment(
                function, {}, context, home=work / "home", log_stream=_log_stream()
            )
            request = {"init_only": True, "timeout_seconds": 60}
            response, lines, process_ms, _ = self._run(function, request, environment, work)
        if response is None or response.get("error"):
            detail = (response or {}).get("error") or "\n".join(lines[-10:])
            raise FunctionError(
                detail
                if isinstance(detail, dict)
                else {"errorType": "Runtime.ExitError", "errorMessage": detail}
            )
        return ColdStart(init_ms=float(response["init_ms"]), process_ms=process_ms)


@dataclass(frozen=True)
class _ColdStartContext:
    function_name: str
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"


def _log_stream() -> str:
    return f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"

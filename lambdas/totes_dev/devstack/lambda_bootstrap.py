"""The Lambda Python runtime's part, for one invocation of a built function on the local stack.

Run by :mod:`totes_dev.devstack.lambda_runtime` as ``python3.12 -I -S -B -u <this file>
<request.json>``, in a fresh process whose environment is only what Lambda would give the
function. Standard library only: nothing of the development environment is on the path, only
the function's unzipped code and layers, in Lambda's order. Like the runtime it imports the
handler module (the "init" phase, timed), builds the context object, calls the handler and
reports its result or its error, while whatever the handler writes to stdout and stderr goes
where CloudWatch would get it.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The context object's attributes and method, as the Python runtime provides them."""

    def __init__(self, fields: dict[str, Any], deadline: float) -> None:
        self.function_name: str = fields["function_name"]
        self.function_version: str = fields["function_version"]
        self.invoked_function_arn: str = fields["invoked_function_arn"]
        self.memory_limit_in_mb: int = fields["memory_limit_in_mb"]
        self.aws_request_id: str = fields["aws_request_id"]
        self.log_group_name: str = fields["log_group_name"]
        self.log_stream_name: str = fields["log_stream_name"]
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def _frames(exc: BaseException) -> list[str]:
    return traceback.format_list(traceback.extract_tb(exc.__traceback__))


def _failed(error_type: str, message: str, exc: BaseException, request_id: str) -> dict[str, Any]:
    document = {
        "errorType": error_type,
        "errorMessage": message,
        "requestId": request_id,
        "stackTrace": _frames(exc),
    }
    # The runtime logs an unhandled error itself, as one record, before answering.
    print(f"[ERROR] {error_type}: {message}", file=sys.stderr)
    for frame in document["stackTrace"]:
        print(frame.rstrip(), file=sys.stderr)
    return document


def run(request: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + float(request["timeout_seconds"])
    request_id = str(request.get("context", {}).get("aws_request_id", ""))
    # Lambda's search path: the code, then each layer's python/, then the standard library.
    sys.path[:0] = [request["task_root"], *request["layer_paths"]]
    module_name, _, function_name = str(request["handler"]).rpartition(".")
    started = time.perf_counter()
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:  # the runtime reports every import failure this way
        message = f"Unable to import module '{module_name}': {exc}"
        error = _failed("Runtime.ImportModuleError", message, exc, request_id)
        return {"error": error, "init_ms": _ms(started)}
    init_ms = _ms(started)
    if request.get("init_only"):
        return {"result": None, "init_ms": init_ms}
    context = LambdaContext(request["context"], deadline)
    invoked = time.perf_counter()
    try:
        result = handler(request["event"], context)
    except Exception as exc:
        error = _failed(type(exc).__name__, str(exc), exc, request_id)
        return {"error": error, "init_ms": init_ms, "duration_ms": _ms(invoked)}
    duration_ms = _ms(invoked)
    try:
        body = json.dumps(result)
    except (TypeError, ValueError) as exc:
        error = _failed(
            "Runtime.MarshalError", f"Unable to marshal response: {exc}", exc, request_id
        )
        return {"error": error, "init_ms": init_ms, "duration_ms": duration_ms}
    return {"result": json.loads(body), "init_ms": init_ms, "duration_ms": duration_ms}


def main(request_path: str) -> None:
    with open(request_path, encoding="utf-8") as handle:
        request = json.load(handle)
    response = run(request)
    response["max_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    sys.stdout.flush()
    sys.stderr.flush()
    with open(request["response_path"], "w", encoding="utf-8") as handle:
        json.dump(response, handle)


if __name__ == "__main__":
    main(sys.argv[1])

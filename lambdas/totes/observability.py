"""Structured logs and CloudWatch metrics, through Powertools for AWS Lambda (Python).

Every module logs through :func:`log`: one Powertools Logger writes one JSON object per line with
the service, and inside a handler also the cold start flag, function name, request id and the run
id as correlation id. Lambda forwards stdout to CloudWatch Logs; the ``totes`` command sends the
lines to stderr (or the demo to a file) so that stdout carries only a command's result.

Metrics are emitted only by the handlers, in CloudWatch's embedded metric format (EMF: JSON log
lines CloudWatch turns into metrics), from the summary each stage returns; library code never
emits them, so a command-line run never prints one.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "totes"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "TerrificTotes"

Handler = TypeVar("Handler", bound=Callable[..., Any])


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


class _Destination(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever :func:`log_to` chose, resolved at each line (so a test capturing
    stdout, or the CLI switching to stderr, sees every line)."""

    target: TextIO | None = None
    to_stderr = False

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = self.target or (sys.stderr if self.to_stderr else sys.stdout)
        super().emit(record)


_destination = _Destination()
logger = Logger(
    service=SERVICE,
    logger_handler=_destination,
    json_default=_json_default,
    utc=True,
    log_record_order=["timestamp", "level", "message", "service"],
)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

_WRITERS = {"debug": logger.debug, "info": logger.info, "warning": logger.warning}
_WRITERS["error"] = logger.error


def log(event: str, *, level: str = "info", **fields: Any) -> None:
    """One log line: ``event`` is the message, ``fields`` become keys. Never pass credentials:
    fields are logged as given."""
    _WRITERS[level](event, extra=fields, stacklevel=3)


def send_logs_to_stderr(enabled: bool = True) -> None:
    """The command line sends log lines to stderr so that stdout carries only its result."""
    _Destination.to_stderr = enabled


def log_to(stream: TextIO | None) -> None:
    """Send log lines to ``stream`` (the demo's log file); None: back to stdout/stderr."""
    _Destination.target = stream


def handler(correlation_id_path: str = "run_id") -> Callable[[Handler], Handler]:
    """What every Lambda entry point is wrapped in: the Lambda context and the run id on every
    log line, cold start metric, and the metrics recorded during the call flushed at its end."""

    def wrap(function: Handler) -> Handler:
        @functools.wraps(function)
        def counted(event: Any, context: Any) -> Any:
            try:
                return function(event, context)
            except Exception:
                count("Failures", 1)  # so a failed invocation is a data point too
                raise

        logged = logger.inject_lambda_context(
            correlation_id_path=correlation_id_path, clear_state=True
        )(counted)
        return metrics.log_metrics(capture_cold_start_metric=True)(logged)  # type: ignore[no-any-return,unused-ignore]

    return wrap


def count(name: str, value: float, unit: str = MetricUnit.Count.value) -> None:
    """A metric of this invocation (flushed by :func:`handler`)."""
    metrics.add_metric(name=name, unit=unit, value=value)


def count_per_table(name: str, stage: str, counts: Mapping[str, int]) -> None:
    """One metric per table, with ``stage`` and ``table`` dimensions (an EMF line each)."""
    for table, value in counts.items():
        with single_metric(
            name=name,
            unit=MetricUnit.Count,
            value=value,
            namespace=NAMESPACE,
            default_dimensions={"service": SERVICE, "stage": stage},
        ) as metric:
            metric.add_dimension(name="table", value=table)

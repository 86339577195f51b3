"""Structured JSON log lines on stdout; Lambda forwards stdout to CloudWatch Logs."""

from __future__ import annotations

import json
import sys
import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


_to_stderr = False


def send_logs_to_stderr(enabled: bool = True) -> None:
    """The CLI sends log lines to stderr so that stdout carries only the command's result."""
    global _to_stderr
    _to_stderr = enabled


def log(event: str, *, level: str = "info", stream: TextIO | None = None, **fields: Any) -> None:
    """Write one JSON object per line. Never pass credentials: fields are logged as given."""
    record = {"ts": round(time.time(), 3), "level": level, "event": event, **fields}
    target = stream or (sys.stderr if _to_stderr else sys.stdout)
    print(json.dumps(record, default=_default, sort_keys=False), file=target, flush=True)

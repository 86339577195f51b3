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


def log(event: str, *, level: str = "info", stream: TextIO | None = None, **fields: Any) -> None:
    """Write one JSON object per line. Never pass credentials: fields are logged as given."""
    record = {"ts": round(time.time(), 3), "level": level, "event": event, **fields}
    print(
        json.dumps(record, default=_default, sort_keys=False), file=stream or sys.stdout, flush=True
    )

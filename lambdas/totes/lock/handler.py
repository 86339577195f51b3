"""AWS Lambda entry point of the cycle lock: the state machine's first and last steps.

``{"action": "acquire", "holder": <execution name>, "execution_arn": ..., "ttl_seconds": n}``
returns the lease or raises :class:`CycleBusyError`, which the state machine retries for a
bounded time; ``{"action": "release", "holder": ...}`` gives the lock back. A lease held by an
execution that is no longer running (aborted, timed out) is taken over at once.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

from totes.errors import SettingsError
from totes.jsonlog import log
from totes.lake import open_lake
from totes.lock.lease import CycleLock, LeaseRecord
from totes.settings import ingestion_lake


@cache
def _stepfunctions() -> Any:
    import boto3

    return boto3.client("stepfunctions")


def execution_ended(record: LeaseRecord) -> bool:
    """True when the lease's holder is a Step Functions execution that is no longer running."""
    if not record.execution_arn:
        return False
    try:
        status = _stepfunctions().describe_execution(executionArn=record.execution_arn)["status"]
    except Exception as exc:  # an unknown status keeps the lease: waiting is the safe side
        log("lock.holder_status_unknown", level="warning", holder=record.holder, reason=str(exc))
        return False
    return bool(status != "RUNNING")


def _field(event: dict[str, Any], name: str) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not value:
        raise SettingsError(f"lock event field {name} must be a non-empty string")
    return value


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    action = _field(event, "action")
    holder = _field(event, "holder")
    lock = CycleLock(open_lake(ingestion_lake()), is_stale=execution_ended)
    if action == "acquire":
        ttl = event.get("ttl_seconds")
        if not isinstance(ttl, int) or ttl <= 0:
            raise SettingsError("lock event field ttl_seconds must be a positive integer")
        record = lock.acquire(
            holder, timedelta(seconds=ttl), execution_arn=event.get("execution_arn")
        )
        log("lock.acquired", holder=holder, epoch=record.epoch, expires_at=record.expires_at)
        return {
            "holder": holder,
            "epoch": record.epoch,
            "expires_at": None if record.expires_at is None else record.expires_at.isoformat(),
        }
    if action == "release":
        released = lock.release(holder)
        log("lock.released" if released else "lock.not_held", holder=holder)
        return {"holder": holder, "released": released}
    raise SettingsError(f"lock event field action must be acquire or release, not {action!r}")

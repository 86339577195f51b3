"""AWS Lambda entry point of the cycle lock: the state machine's first and last steps.

``{"action": "acquire", "holder": <execution name>, "execution_arn": ..., "ttl_seconds": n}``
takes the lock, waiting up to ``TOTES_LOCK_WAIT_SECONDS`` while another cycle holds it, and
answers ``{"acquired": true, ...}`` or ``{"acquired": false, "reason": ...}``; the state machine
branches on that. Being busy is an answer, not an error, so it never trips the function's error
alarm. ``{"action": "release", "holder": ...}`` gives the lock back. A lease held by an execution
that is no longer running (aborted, timed out) is taken over at once.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from totes.errors import CycleBusyError, SettingsError
from totes.lake import Lake, open_lake
from totes.lock.lease import CycleLock, LeaseRecord
from totes.observability import count, handler, log
from totes.runtime import execution_ended, per_container
from totes.settings import ingestion_lake, lock_wait

# Each look at the lock is one list and one get: cheap enough to repeat every few seconds.
POLL_SECONDS = 5.0


@per_container
def _lake() -> Lake:
    return open_lake(ingestion_lake())


def holder_ended(record: LeaseRecord) -> bool:
    """True when the lease's holder is a Step Functions execution that is no longer running."""
    return execution_ended(record.execution_arn)


def _field(event: dict[str, Any], name: str) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not value:
        raise SettingsError(f"lock event field {name} must be a non-empty string")
    return value


@handler(correlation_id_path="holder")
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    action = _field(event, "action")
    holder = _field(event, "holder")
    lock = CycleLock(_lake(), is_stale=holder_ended)
    if action == "acquire":
        ttl = event.get("ttl_seconds")
        if not isinstance(ttl, int) or ttl <= 0:
            raise SettingsError("lock event field ttl_seconds must be a positive integer")
        started = time.monotonic()
        try:
            record = lock.acquire_waiting(
                holder,
                timedelta(seconds=ttl),
                wait=lock_wait(),
                poll_seconds=POLL_SECONDS,
                execution_arn=event.get("execution_arn"),
            )
        except CycleBusyError as busy:
            log("lock.busy", level="warning", holder=holder, reason=busy.reason)
            count("LockBusy", 1)
            return {"holder": holder, "acquired": False, "reason": busy.reason}
        count("LockWaitSeconds", round(time.monotonic() - started, 3), unit="Seconds")
        log("lock.acquired", holder=holder, epoch=record.epoch, expires_at=record.expires_at)
        return {
            "holder": holder,
            "acquired": True,
            "epoch": record.epoch,
            "expires_at": None if record.expires_at is None else record.expires_at.isoformat(),
        }
    if action == "release":
        released = lock.release(holder)
        log("lock.released" if released else "lock.not_held", holder=holder)
        count("LockReleased", int(released))
        return {"holder": holder, "released": released}
    raise SettingsError(f"lock event field action must be acquire or release, not {action!r}")

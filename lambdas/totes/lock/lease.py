"""A lease that one cycle holds at a time, kept as write-once records in the ingestion lake.

The lock needs no server of its own and works wherever the lake does (S3 or a directory), so the
same lock serialises Step Functions executions, ``totes run`` processes and replays. It is an
append-only log under ``_leases/cycle/``: every acquire, renewal and release writes the next
*epoch*'s record with a conditional put, and the newest record is the lock's state. Two writers
racing for one epoch cannot both win, which makes taking the lock a compare-and-swap; no record
is ever overwritten or deleted, as everywhere else in the lake.

A holder that dies cannot block forever: a lease expires (``expires_at``), and a lease taken by a
Step Functions execution also ends as soon as that execution is no longer running (checked by
the caller's ``is_stale``). The lock saves work and gives a clear answer; correctness does not
rest on it: every commit is one-winner by sequence (:mod:`totes.commits`), so even two cycles
that overlap after a lease expired cannot duplicate or lose a batch.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from totes.clock import stored_instant
from totes.errors import CycleBusyError, LakeError, ObjectExistsError, reason
from totes.lake import Lake, get_json, put_json
from totes.observability import log

LEASE_PREFIX = "_leases/cycle/"
# A command's lease: renewed every third of this while the command runs, so a process that dies
# blocks others for at most this long.
COMMAND_LEASE_TTL = timedelta(minutes=5)
_MAX_EPOCH = 999_999_999_999
_ATTEMPTS = 3


def command_holder(command: str) -> str:
    """A holder name an operator can trace: the command, host and process."""
    return f"{command}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def tell_waiting(busy: CycleBusyError) -> None:
    """What a command prints (stderr) when it starts waiting for the lock."""
    print(f"totes: waiting: {busy.reason}", file=sys.stderr, flush=True)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def lease_key(epoch: int) -> str:
    """Inverted so that the newest record lists first."""
    return f"{LEASE_PREFIX}{_MAX_EPOCH - epoch:013d}.json"


@dataclass(frozen=True)
class LeaseRecord:
    epoch: int
    holder: str
    state: str  # "held" or "released"
    written_at: datetime
    acquired_at: datetime
    expires_at: datetime | None
    execution_arn: str | None = None

    def active(self, now: datetime) -> bool:
        return self.state == "held" and self.expires_at is not None and self.expires_at > now

    def describe(self) -> str:
        until = "" if self.expires_at is None else f", lease until {self.expires_at:%H:%M:%S}Z"
        return f"{self.holder} holds the lock since {self.acquired_at:%Y-%m-%d %H:%M:%S}Z{until}"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": 1,
            "epoch": self.epoch,
            "holder": self.holder,
            "state": self.state,
            "written_at": self.written_at.isoformat(),
            "acquired_at": self.acquired_at.isoformat(),
            "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
            "execution_arn": self.execution_arn,
        }

    @classmethod
    def from_json(cls, key: str, value: dict[str, Any]) -> LeaseRecord:
        try:
            written = stored_instant(value["written_at"])
            acquired = stored_instant(value["acquired_at"])
            if written is None or acquired is None:
                raise ValueError("written_at and acquired_at are required")
            return cls(
                epoch=int(value["epoch"]),
                holder=str(value["holder"]),
                state=str(value["state"]),
                written_at=written,
                acquired_at=acquired,
                expires_at=stored_instant(value.get("expires_at")),
                execution_arn=value.get("execution_arn"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LakeError(f"lock record {key} is unreadable: {exc!r}") from None


def _never_stale(record: LeaseRecord) -> bool:
    return False


class CycleLock:
    """The cycle lock of one lake. ``is_stale`` may end a lease early (its holder is gone)."""

    def __init__(
        self,
        lake: Lake,
        *,
        clock: Callable[[], datetime] = _utc_now,
        is_stale: Callable[[LeaseRecord], bool] = _never_stale,
    ) -> None:
        self.lake = lake
        self.clock = clock
        self.is_stale = is_stale

    def current(self) -> LeaseRecord | None:
        """The newest record: who holds the lock, or who released it last."""
        for key in self.lake.list(LEASE_PREFIX, page_size=1):
            return LeaseRecord.from_json(key, get_json(self.lake, key))
        return None

    def _write(self, record: LeaseRecord) -> None:
        put_json(self.lake, lease_key(record.epoch), record.to_json())

    def acquire(
        self, holder: str, ttl: timedelta, *, execution_arn: str | None = None
    ) -> LeaseRecord:
        """Take the lock for ``ttl`` or, when ``holder`` has it already, extend it.

        Raises :class:`CycleBusyError` naming the holder when another cycle has it."""
        for _ in range(_ATTEMPTS):
            head = self.current()
            now = self.clock()
            ours = head is not None and head.state == "held" and head.holder == holder
            if head is not None and not ours and head.active(now):
                if not self.is_stale(head):
                    raise CycleBusyError(f"another cycle is running: {head.describe()}")
                log(
                    "lock.stale_lease_taken_over",
                    level="warning",
                    holder=holder,
                    previous_holder=head.holder,
                    previous_execution_arn=head.execution_arn,
                )
            record = LeaseRecord(
                epoch=(head.epoch if head else 0) + 1,
                holder=holder,
                state="held",
                written_at=now,
                acquired_at=head.acquired_at if ours and head is not None else now,
                expires_at=now + ttl,
                execution_arn=execution_arn,
            )
            try:
                self._write(record)
            except ObjectExistsError:
                continue  # another writer took this epoch since we looked: look again
            return record
        raise CycleBusyError("another cycle is taking the lock at this very moment")

    def release(self, holder: str) -> bool:
        """Give the lock back; False (and nothing written) when ``holder`` no longer has it."""
        for _ in range(_ATTEMPTS):
            head = self.current()
            if head is None or head.state != "held" or head.holder != holder:
                return False
            try:
                self._write(self._released(head, by=holder))
            except ObjectExistsError:
                continue
            return True
        return False

    def break_lock(self, *, by: str) -> LeaseRecord | None:
        """Release whoever holds the lock (an operator's decision); returns the broken lease."""
        for _ in range(_ATTEMPTS):
            head = self.current()
            if head is None or head.state != "held":
                return None
            try:
                self._write(self._released(head, by=by))
            except ObjectExistsError:
                continue
            return head
        raise CycleBusyError("the lock changed hands while it was being broken; try again")

    def _released(self, head: LeaseRecord, *, by: str) -> LeaseRecord:
        now = self.clock()
        return LeaseRecord(
            epoch=head.epoch + 1,
            holder=by,
            state="released",
            written_at=now,
            acquired_at=head.acquired_at,
            expires_at=None,
        )

    def acquire_waiting(
        self,
        holder: str,
        ttl: timedelta,
        *,
        wait: timedelta,
        poll_seconds: float = 1.0,
        on_busy: Callable[[CycleBusyError], None] | None = None,
        execution_arn: str | None = None,
    ) -> LeaseRecord:
        """:meth:`acquire`, trying again for up to ``wait`` while another cycle has the lock."""
        deadline = time.monotonic() + wait.total_seconds()
        told = False
        while True:
            try:
                return self.acquire(holder, ttl, execution_arn=execution_arn)
            except CycleBusyError as busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
                if on_busy is not None and not told:
                    on_busy(busy)
                    told = True
                time.sleep(min(poll_seconds, remaining))


@contextlib.contextmanager
def holding(
    lock: CycleLock,
    holder: str,
    *,
    ttl: timedelta,
    wait: timedelta = timedelta(0),
    on_busy: Callable[[CycleBusyError], None] | None = None,
) -> Iterator[LeaseRecord]:
    """Hold the lock for the duration of the block, renewing it every third of ``ttl``; a holder
    that crashes stops renewing and its lease lapses after at most ``ttl``."""
    record = lock.acquire_waiting(holder, ttl, wait=wait, on_busy=on_busy)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl.total_seconds() / 3):
            try:
                lock.acquire(holder, ttl)
            except (CycleBusyError, LakeError) as exc:
                log("lock.renew_failed", level="warning", holder=holder, reason=str(exc))

    renewer = threading.Thread(target=renew, name="totes-lock-renewal", daemon=True)
    renewer.start()
    try:
        yield record
    finally:
        stop.set()
        renewer.join()
        _release_retrying(lock, holder)


_RELEASE_ATTEMPTS = 3


def _release_retrying(lock: CycleLock, holder: str) -> None:
    """Give the lock back, trying again after a storage failure: a lease left behind blocks
    every other cycle until it lapses. If the storage stays down, it lapses after its ttl."""
    for attempt in range(_RELEASE_ATTEMPTS):
        try:
            if not lock.release(holder):
                log("lock.lost_before_release", level="warning", holder=holder)
            return
        except Exception as exc:  # the lake's own errors and a storage that failed outright
            log("lock.release_failed", level="warning", holder=holder, reason=reason(exc))
            time.sleep(0.2 * 2**attempt)


def command_holding(
    lake: Lake, command: str, wait_seconds: float
) -> contextlib.AbstractContextManager[LeaseRecord]:
    """The cycle lock held by a command for its duration, waiting up to ``wait_seconds``."""
    return holding(
        CycleLock(lake),
        command_holder(command),
        ttl=COMMAND_LEASE_TTL,
        wait=timedelta(seconds=wait_seconds),
        on_busy=tell_waiting,
    )

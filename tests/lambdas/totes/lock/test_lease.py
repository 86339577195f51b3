"""The cycle lock on a directory and on S3 (moto): one holder at a time, leases that lapse, and a
log of write-once records."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from totes.errors import CycleBusyError
from totes.lake import Lake
from totes.lock.lease import LEASE_PREFIX, CycleLock, LeaseRecord, holding

HOUR = timedelta(hours=1)


@pytest.fixture(params=["s3", "local"])
def lake(request: pytest.FixtureRequest) -> Lake:
    return request.getfixturevalue(f"{request.param}_lake")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_second_holder_is_refused_with_the_holder_named(lake: Lake) -> None:
    lock = CycleLock(lake)
    record = lock.acquire("run-a", HOUR)
    assert (record.epoch, record.holder, record.state) == (1, "run-a", "held")
    with pytest.raises(CycleBusyError, match="another cycle is running: run-a holds the lock"):
        lock.acquire("run-b", HOUR)
    assert CycleBusyError("x").exit_code == 75


def test_release_frees_the_lock_and_only_the_holder_can_release(lake: Lake) -> None:
    lock = CycleLock(lake)
    lock.acquire("run-a", HOUR)
    assert lock.release("run-b") is False
    assert lock.release("run-a") is True
    assert lock.release("run-a") is False  # already released: nothing written
    assert lock.acquire("run-b", HOUR).epoch == 3
    # Every change is a new record; none is overwritten.
    assert len(list(lake.list(LEASE_PREFIX))) == 3


def test_acquiring_again_renews_and_keeps_when_the_hold_began(lake: Lake) -> None:
    clock = Clock()
    lock = CycleLock(lake, clock=clock)
    first = lock.acquire("run-a", HOUR)
    clock.now += timedelta(minutes=30)
    renewed = lock.acquire("run-a", HOUR)
    assert renewed.epoch == first.epoch + 1
    assert renewed.acquired_at == first.acquired_at
    assert renewed.expires_at == clock.now + HOUR


def test_an_expired_lease_is_taken_over(lake: Lake) -> None:
    clock = Clock()
    lock = CycleLock(lake, clock=clock)
    lock.acquire("crashed", timedelta(minutes=5))
    clock.now += timedelta(minutes=5, seconds=1)
    assert lock.acquire("next", HOUR).holder == "next"


def test_a_lease_judged_stale_is_taken_over_before_it_expires(lake: Lake) -> None:
    CycleLock(lake).acquire("aborted", HOUR, execution_arn="arn:aws:states:x:execution:m:aborted")
    seen: list[LeaseRecord] = []

    def stale(record: LeaseRecord) -> bool:
        seen.append(record)
        return record.execution_arn is not None

    assert CycleLock(lake, is_stale=stale).acquire("next", HOUR).holder == "next"
    assert [r.holder for r in seen] == ["aborted"]


def test_of_two_racing_acquirers_exactly_one_wins(lake: Lake) -> None:
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def race(holder: str) -> None:
        lock = CycleLock(lake)
        barrier.wait()
        try:
            lock.acquire(holder, HOUR)
            outcomes[holder] = "held"
        except CycleBusyError as busy:
            outcomes[holder] = busy.reason

    threads = [threading.Thread(target=race, args=(h,)) for h in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [h for h, outcome in outcomes.items() if outcome == "held"]
    assert len(winners) == 1
    current = CycleLock(lake).current()
    assert current is not None
    assert current.holder == winners[0]


def test_waiting_acquires_once_the_holder_releases(lake: Lake) -> None:
    lock = CycleLock(lake)
    lock.acquire("run-a", HOUR)
    told: list[str] = []
    threading.Timer(0.5, lock.release, args=("run-a",)).start()
    started = time.monotonic()
    record = lock.acquire_waiting(
        "run-b",
        HOUR,
        wait=timedelta(seconds=20),
        poll_seconds=0.1,
        on_busy=lambda b: told.append(b.reason),
    )
    assert record.holder == "run-b"
    assert 0.4 < time.monotonic() - started < 15
    assert len(told) == 1
    assert "run-a holds the lock" in told[0]


def test_waiting_gives_up_after_the_bound(lake: Lake) -> None:
    lock = CycleLock(lake)
    lock.acquire("run-a", HOUR)
    started = time.monotonic()
    with pytest.raises(CycleBusyError, match="run-a"):
        lock.acquire_waiting("run-b", HOUR, wait=timedelta(seconds=0.5), poll_seconds=0.1)
    assert time.monotonic() - started < 5


def test_holding_renews_while_the_block_runs_and_releases_after(lake: Lake) -> None:
    lock = CycleLock(lake)
    ttl = timedelta(seconds=0.6)
    with holding(lock, "run-a", ttl=ttl) as record:
        time.sleep(1.5)  # longer than the lease: only renewals keep it
        current = lock.current()
        assert current is not None
        assert current.holder == "run-a"
        assert current.active(datetime.now(UTC))
        assert current.epoch > record.epoch
    current = lock.current()
    assert current is not None
    assert current.state == "released"


def test_holding_releases_when_the_block_fails(lake: Lake) -> None:
    lock = CycleLock(lake)
    with pytest.raises(RuntimeError), holding(lock, "run-a", ttl=HOUR):
        raise RuntimeError("stage failed")
    assert lock.acquire("run-b", HOUR).holder == "run-b"


def test_breaking_releases_whoever_holds_the_lock(lake: Lake) -> None:
    lock = CycleLock(lake)
    assert lock.break_lock(by="operator") is None
    lock.acquire("gone", HOUR)
    broken = lock.break_lock(by="operator")
    assert broken is not None
    assert broken.holder == "gone"
    assert lock.acquire("next", HOUR).holder == "next"


def test_a_release_that_fails_once_is_tried_again(lake: Lake) -> None:
    from totes_dev.faults import FaultyLake, at_key

    flaky = FaultyLake(lake, at_key(r"^_leases/"))
    lock = CycleLock(lake)
    with holding(lock, "run-a", ttl=HOUR):
        # The storage fails the next lease write: the release's.
        lock.lake = flaky
    current = CycleLock(lake).current()
    assert current is not None
    assert (current.state, flaky.failed is not None) == ("released", True)

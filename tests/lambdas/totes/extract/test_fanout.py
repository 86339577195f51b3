"""The fanned-out extract (a snapshot holder, one worker per table, one commit) against a real
PostgreSQL and lakes: it commits what one invocation would, every worker reads the holder's
instant, and a failure anywhere commits nothing and lets the snapshot go."""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from totes.commits import committed_after, newest
from totes.errors import ObjectExistsError, SourceError
from totes.extract import fanout
from totes.extract.extractor import run_extract
from totes.extract.plan import ExtractRequest, plan_key
from totes.lake import Lake, LocalLake, SameBytesPuts, get_json, read_parquet
from totes.settings import DbSettings, ExtractSettings
from totes.tables import LOAD_ORDER
from totes_dev.devstack.postgres import create_password_login

SETTINGS = ExtractSettings(timedelta(minutes=10), "on-demand")
END = datetime(2030, 1, 1, tzinfo=UTC)


class Holder:
    """``hold_snapshot`` on a thread of its own, as the state machine's other branch runs it."""

    def __init__(
        self, source: DbSettings, lake: Lake, *, full_scan: bool, seconds: float = 60
    ) -> None:
        self.attempt = str(uuid.uuid4())
        self.started = time.monotonic()
        self.given_up = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1)
        self.result: Future[dict[str, Any]] = self._pool.submit(
            fanout.hold_snapshot,
            source,
            lake,
            ExtractRequest("fanout-test", None, END, full_scan),
            attempt=self.attempt,
            settings=SETTINGS,
            deadline=time.monotonic() + seconds,
            abandoned=self.given_up.is_set,
            poll_seconds=0.02,
        )

    def close(self) -> None:
        self.given_up.set()
        self._pool.shutdown(wait=True)


@pytest.fixture
def holders() -> Iterator[Callable[..., Holder]]:
    started: list[Holder] = []

    def start(source: DbSettings, lake: Lake, *, full_scan: bool = False, **kw: Any) -> Holder:
        holder = Holder(source, lake, full_scan=full_scan, **kw)
        started.append(holder)
        return holder

    yield start
    for holder in started:
        holder.close()


def _plan(lake: Lake, holder: Holder) -> dict[str, Any]:
    return fanout.await_plan(
        lake, attempt=holder.attempt, deadline=time.monotonic() + 30, poll_seconds=0.02
    )


def _fan_out(source: DbSettings, lake: Lake, holder: Holder) -> dict[str, Any]:
    """What the Map state and the commit do: every planned table at once, then the commit."""
    tables = _plan(lake, holder)["tables"]
    with ThreadPoolExecutor(max_workers=4) as workers:
        parts = list(
            workers.map(
                lambda table: fanout.extract_table(
                    source, lake, attempt=holder.attempt, table=table, settings=SETTINGS
                ),
                tables,
            )
        )
    summary = fanout.commit_parts(lake, attempt=holder.attempt, parts=parts)
    holder.result.result(timeout=30)  # the commit released the snapshot
    # The summary times the whole fan-out (from the plan on), not only the commit.
    assert max((p["seconds"] for p in parts), default=0) <= summary["seconds"]
    assert summary["seconds"] <= time.monotonic() - holder.started
    return summary


def _sessions(source: DbSettings, application: str) -> int:
    with psycopg.connect(**source.conninfo(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _landed(lake: Lake, summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    tables = get_json(lake, summary["manifest_key"])["tables"]
    return {
        name: read_parquet(lake, entry["key"]).to_pylist() if entry["key"] else []
        for name, entry in tables.items()
    }


def test_fanned_out_extract_commits_what_one_invocation_commits(
    source_small: DbSettings, tmp_path: Path, holders: Callable[..., Holder]
) -> None:
    fanned, single = LocalLake(tmp_path / "fanned"), LocalLake(tmp_path / "single")
    summary = _fan_out(source_small, fanned, holders(source_small, fanned))
    one = run_extract(
        source_small,
        single,
        run_id="fanout-test",
        window_start=None,
        window_end=END,
        full_scan=False,
        settings=SETTINGS,
    )
    assert summary["sequence"] == one["sequence"] == 1
    assert summary["rows"] == one["rows"]
    assert all(summary["rows"][name] > 0 for name in LOAD_ORDER)
    assert _landed(fanned, summary) == _landed(single, one)
    # The next run of either kind diffs against the fanned-out batch's states: nothing new.
    assert _fan_out(source_small, fanned, holders(source_small, fanned))["batch_id"] is None
    # And the snapshot's transaction ended with the commit.
    assert _sessions(source_small, "totes-extract-snapshot") == 0


def test_every_worker_reads_the_holders_instant_not_later_changes(
    source_small: DbSettings, tmp_path: Path, holders: Callable[..., Holder]
) -> None:
    lake = LocalLake(tmp_path / "lake")
    holder = holders(source_small, lake, full_scan=True)
    _plan(lake, holder)
    # After the plan, before any worker reads: a silent edit (last_updated kept) and a new row
    # dated inside the window, in two different tables.
    with psycopg.connect(**source_small.conninfo(), autocommit=True) as conn:
        conn.execute("UPDATE staff SET first_name = 'Later' WHERE staff_id = 1")
        conn.execute(
            "INSERT INTO currency (currency_code, created_at, last_updated)"
            " VALUES ('ZZZ', '2024-01-01', '2024-01-01')"
        )
    summary = _fan_out(source_small, lake, holder)
    rows = _landed(lake, summary)
    assert {r["first_name"] for r in rows["staff"] if r["staff_id"] == 1} != {"Later"}
    assert "ZZZ" not in {r["currency_code"] for r in rows["currency"]}
    # Nothing is lost: the next full scan, in a snapshot of its own, sees both.
    later = _fan_out(source_small, lake, holders(source_small, lake, full_scan=True))
    rows = _landed(lake, later)
    assert [r["first_name"] for r in rows["staff"]] == ["Later"]
    assert [r["currency_code"] for r in rows["currency"]] == ["ZZZ"]


def test_a_failed_worker_commits_nothing_and_the_holder_lets_go(
    source_small: DbSettings, tmp_path: Path, holders: Callable[..., Holder]
) -> None:
    lake = LocalLake(tmp_path / "lake")
    holder = holders(source_small, lake)
    assert "payment" in _plan(lake, holder)["tables"]
    gone = DbSettings(
        source_small.host,
        source_small.port,
        source_small.user,
        source_small.password,
        "no_such_database",
    )
    with pytest.raises(SourceError, match="no_such_database"):
        fanout.extract_table(gone, lake, attempt=holder.attempt, table="payment", settings=SETTINGS)
    assert _sessions(source_small, "totes-extract-snapshot") == 1
    holder.given_up.set()  # the execution failed: the holder sees it is no longer running
    with pytest.raises(SourceError, match="the execution has ended"):
        holder.result.result(timeout=30)
    assert _sessions(source_small, "totes-extract-snapshot") == 0
    assert newest(lake) is None
    # A new attempt starts from the same committed state and lands every row.
    summary = _fan_out(source_small, lake, holders(source_small, lake))
    assert summary["sequence"] == 1
    assert len(committed_after(lake, 0)) == 1


def test_a_holder_that_cannot_plan_stops_the_waiting_branch_with_its_reason(
    source_small: DbSettings, tmp_path: Path, holders: Callable[..., Holder]
) -> None:
    lake = LocalLake(tmp_path / "lake")
    down = DbSettings("127.0.0.1", 1, source_small.user, "", source_small.database)
    holder = holders(down, lake)
    with pytest.raises(SourceError, match="cannot connect"):
        holder.result.result(timeout=30)
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"snapshot holder failed.*cannot connect"):
        _plan(lake, holder)
    assert time.monotonic() - started < 5  # no wait for its own deadline
    assert lake.exists(plan_key(holder.attempt))
    assert newest(lake) is None


def test_workers_past_the_holders_deadline_fail_rather_than_read_another_instant(
    source_small: DbSettings, tmp_path: Path, holders: Callable[..., Holder]
) -> None:
    lake = LocalLake(tmp_path / "lake")
    holder = holders(source_small, lake, seconds=0.5)
    _plan(lake, holder)
    with pytest.raises(SourceError, match="gave up waiting for the workers"):
        holder.result.result(timeout=30)
    with pytest.raises(SourceError, match="invalid snapshot identifier"):
        fanout.extract_table(
            source_small, lake, attempt=holder.attempt, table="staff", settings=SETTINGS
        )
    assert newest(lake) is None


def test_a_worker_run_twice_writes_the_same_objects_and_the_batch_commits(
    source_small: DbSettings, tmp_path: Path, holders: Callable[..., Holder]
) -> None:
    lake = LocalLake(tmp_path / "lake")
    holder = holders(source_small, lake)
    tables = _plan(lake, holder)["tables"]
    # The first try of sales_order wrote its objects, then its answer was lost; the retry
    # reads the same snapshot and writes the same bytes under the same keys.
    first = fanout.extract_table(
        source_small, lake, attempt=holder.attempt, table="sales_order", settings=SETTINGS
    )
    again = fanout.extract_table(
        source_small, lake, attempt=holder.attempt, table="sales_order", settings=SETTINGS
    )
    assert again["entry"] == first["entry"]
    parts = [again] + [
        fanout.extract_table(source_small, lake, attempt=holder.attempt, table=t, settings=SETTINGS)
        for t in tables
        if t != "sales_order"
    ]
    summary = fanout.commit_parts(lake, attempt=holder.attempt, parts=parts)
    assert summary["rows"]["sales_order"] == first["entry"]["rows"] > 0


def test_other_bytes_under_a_written_key_are_still_refused(tmp_path: Path) -> None:
    lake = SameBytesPuts(LocalLake(tmp_path / "lake"))
    lake.put("t/a.parquet", b"same")
    lake.put("t/a.parquet", b"same")
    with pytest.raises(ObjectExistsError):
        lake.put("t/a.parquet", b"other")
    assert lake.get("t/a.parquet") == b"same"


def test_a_holder_refused_by_the_source_leaves_the_plan_to_its_retry(
    source_small: DbSettings, pg_admin: DbSettings, tmp_path: Path
) -> None:
    role = f"rotated_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**pg_admin.conninfo(), autocommit=True) as conn:
        create_password_login(conn, role, "current")
    lake = LocalLake(tmp_path / "lake")
    # A password rotated since the secret was cached: the handler re-reads it and runs again.
    stale = DbSettings(source_small.host, source_small.port, role, "old", source_small.database)
    request = ExtractRequest("fanout-test", None, END, False)
    attempt = str(uuid.uuid4())
    hold = functools.partial(
        fanout.hold_snapshot, stale, lake, request, settings=SETTINGS, deadline=time.monotonic()
    )
    try:
        with pytest.raises(SourceError, match="password authentication failed") as refused:
            hold(attempt=attempt, last_try=False)
        assert refused.value.credentials_rejected
        assert not lake.exists(plan_key(attempt))  # the retry with the re-read secret writes it
        # Refused again with the re-read secret: now the waiting branch is told.
        with pytest.raises(SourceError, match="password authentication failed"):
            hold(attempt=attempt, last_try=True)
        with pytest.raises(SourceError, match=r"snapshot holder failed.*password authentication"):
            fanout.await_plan(lake, attempt=attempt, deadline=time.monotonic() + 5)
    finally:
        with psycopg.connect(**pg_admin.conninfo(), autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


def test_the_waiting_branch_stops_when_its_execution_has_ended(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    ended = threading.Event()
    threading.Timer(0.3, ended.set).start()
    started = time.monotonic()
    with pytest.raises(SourceError, match="the execution has ended"):
        fanout.await_plan(
            lake,
            attempt=str(uuid.uuid4()),
            deadline=time.monotonic() + 60,
            abandoned=ended.is_set,
            poll_seconds=0.02,
        )
    # within one status interval of the end, not at the deadline
    assert time.monotonic() - started < fanout.STATUS_SECONDS + 5

"""The extract plan every fanned-out invocation reads: it survives its JSON form exactly, and the
two ids that become a lake key and SQL text are checked against their one allowed shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from totes.errors import SettingsError
from totes.extract.plan import ExtractPlan, attempt_id, plan_key, released_key, snapshot_id

PLAN = ExtractPlan(
    run_id="scheduled__2026-01-01T00:20:00+00:00",
    window_start=datetime(2026, 1, 1, tzinfo=UTC),
    window_end=datetime(2026, 1, 1, 0, 20, tzinfo=UTC),
    full=False,
    rehash=False,
    manifest_key="_manifests/0999999999998.json",
    batch_id="20260101T002000123Z-0a1b2c3d",
    tables=("staff", "sales_order"),
    lowers={"staff": datetime(2025, 12, 31, 23, 50, 0, 123000), "sales_order": None},
    extras={"staff": ["nickname"]},
    overlap=timedelta(minutes=10),
    snapshot="00000003-0000001B-1",
    planned_at=datetime(2026, 1, 1, 0, 20, 1, 250000, tzinfo=UTC),
)


def test_a_plan_round_trips_through_json() -> None:
    assert ExtractPlan.from_json(PLAN.to_json()) == PLAN
    assert PLAN.lower("staff") == datetime(2025, 12, 31, 23, 50, 0, 123000)
    full = ExtractPlan.from_json({**PLAN.to_json(), "full": True})
    assert full.lower("staff") is None  # a full read starts at the beginning


@pytest.mark.parametrize(
    "change",
    [
        {"tables": ["staff", "no_such_table"]},
        {"window_end": None},
        {"run_id": None, "tables": None},
    ],
)
def test_a_damaged_plan_is_refused(change: dict[str, object]) -> None:
    with pytest.raises(SettingsError, match="extract plan is unreadable"):
        ExtractPlan.from_json({**PLAN.to_json(), **change})


def test_attempt_and_snapshot_ids_have_one_shape() -> None:
    attempt = "0f8e2f0c-6a0e-4a57-9a43-2f0d7bd3f1a2"
    assert plan_key(attempt) == f"_runs/{attempt}/plan.json"
    assert released_key(attempt) == f"_runs/{attempt}/released.json"
    bad_attempts: tuple[object, ...] = (
        "../_manifests/x",
        "",
        None,
        attempt.upper(),
        f"{attempt}/x",
    )
    for bad in bad_attempts:
        with pytest.raises(SettingsError):
            attempt_id(bad)
    assert snapshot_id("00000003-0000001B-1") == "00000003-0000001B-1"
    bad_snapshots: tuple[object, ...] = ("00000003-0000001B-1'", "x", 7)
    for bad in bad_snapshots:
        with pytest.raises(SettingsError):
            snapshot_id(bad)
    # A plan whose snapshot id would not be safe to splice into SET TRANSACTION SNAPSHOT.
    with pytest.raises(SettingsError, match="not an exported PostgreSQL snapshot id"):
        ExtractPlan.from_json({**PLAN.to_json(), "snapshot": "1'; SELECT pg_sleep(10); --"})

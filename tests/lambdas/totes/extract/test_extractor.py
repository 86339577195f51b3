"""The extract run against a real PostgreSQL (real snapshots) and the moto S3 server."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from totes.batches import MANIFEST_PREFIX
from totes.commits import newest
from totes.contracts.content_hash import LEGACY_SCHEME, SCHEME, row_hashes
from totes.contracts.ingestion import STATE_PREFIX, landing_schema, load_previous
from totes.errors import LakeError, SchemaDriftError, SourceError
from totes.extract.extractor import committed_watermark, run_extract
from totes.lake import (
    Lake,
    LocalLake,
    Payload,
    ReadsThrough,
    S3Lake,
    get_json,
    parquet_bytes,
    read_parquet,
)
from totes.settings import DbSettings, ExtractSettings
from totes.tables import LOAD_ORDER, source_table
from totes_dev.devstack.postgres import free_port
from totes_dev.source.snapshots import load_snapshot, snapshot_path


def extract(
    db: DbSettings,
    lake: Lake,
    end: datetime,
    *,
    full_scan: bool = False,
    cadence: str = "on-demand",
    overlap_minutes: float = 10,
    run_id: str = "test",
) -> dict[str, Any]:
    return run_extract(
        db,
        lake,
        run_id=run_id,
        window_start=None,
        window_end=end,
        full_scan=full_scan,
        settings=ExtractSettings(timedelta(minutes=overlap_minutes), cadence),
    )


def landed(lake: Lake, summary: dict[str, Any], table: str) -> pa.Table:
    """The rows batch ``summary`` landed for ``table`` (an empty table when none)."""
    key = get_json(lake, summary["manifest_key"])["tables"][table]["key"]
    if key is None:
        return landing_schema(source_table(table), []).empty_table()
    return read_parquet(lake, key)


def source_rows(db: DbSettings, table: str) -> list[dict[str, Any]]:
    """Every row as psycopg returns it, in the landing form (enum labels as text), by key."""
    spec = source_table(table)
    select = ", ".join(f'{c.select_expression} AS "{c.name}"' for c in spec.columns)
    with psycopg.connect(**db.conninfo()) as conn, conn.cursor() as cur:
        cur.execute(f'SELECT {select} FROM {spec.quoted} ORDER BY "{spec.primary_key}"')
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def execute(db: DbSettings, statement: str, params: tuple[Any, ...] = ()) -> None:
    with psycopg.connect(**db.conninfo(), autocommit=True) as conn:
        conn.execute(statement, params)


def fetch(db: DbSettings, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(**db.conninfo()) as conn:
        return conn.execute(statement, params).fetchall()


class FailingLake(ReadsThrough):
    """The real lake, except that writes fail after ``allowed`` successful ones (a crash)."""

    def __init__(self, inner: Lake, allowed: int) -> None:
        self.inner = inner
        self.uri = inner.uri
        self.allowed = allowed
        self.written: list[str] = []
        self._lock = threading.Lock()  # the extract writes from several threads

    def put(self, key: str, data: Payload) -> None:
        with self._lock:
            if len(self.written) >= self.allowed:
                raise LakeError(f"injected failure writing {key}")
            self.written.append(key)
        self.inner.put(key, data)


FEB_END = datetime(2024, 2, 24, tzinfo=UTC)
NOV_END = datetime(2024, 11, 16, tzinfo=UTC)
NOV_NEW = {
    "address": 0,
    "counterparty": 0,
    "currency": 0,
    "department": 0,
    "design": 149,
    "staff": 0,
    "payment_type": 0,
    "sales_order": 4246,
    "purchase_order": 1691,
    "transaction": 5937,
    "payment": 5937 + 30,  # new payments and the 30 Feb payments flipped to paid
}
SILENTLY_EDITED = {"sales_order": 69, "purchase_order": 60, "design": 57}


def objects(bucket_lake: S3Lake) -> dict[str, str]:
    """Every key of the lake with its ETag: proof that nothing was rewritten."""
    client = bucket_lake.client
    found: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket_lake.bucket):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["ETag"]
    return found


def versions(db: DbSettings, table: str) -> dict[int, tuple[datetime, str]]:
    """Each key's ``last_updated`` and an md5 of its row computed by PostgreSQL: an oracle of
    content changes that shares nothing with the extract's own hash."""
    spec = source_table(table)
    known = ", ".join(f'"{c.name}"' for c in spec.columns)
    rows = fetch(
        db, f'SELECT "{spec.primary_key}", last_updated, md5(ROW({known})::text) FROM {spec.quoted}'
    )
    return {pk: (updated, digest) for pk, updated, digest in rows}


def test_first_run_lands_every_row_exactly(source_feb: DbSettings, s3_lake: S3Lake) -> None:
    assert committed_watermark(s3_lake) is None
    summary = extract(source_feb, s3_lake, FEB_END)
    assert summary["batch_id"] is not None
    latest = newest(s3_lake)
    assert latest is not None
    assert summary["manifest_key"] == latest.key
    for table in LOAD_ORDER:
        spec = source_table(table)
        rows = landed(s3_lake, summary, table)
        expected = source_rows(source_feb, table)
        assert summary["rows"][table] == len(expected) > 0
        for column in spec.columns:
            assert rows.schema.field(column.name).type == column.arrow_type, (table, column.name)
        assert rows.select(spec.column_names).to_pylist() == expected, table
        assert pc.all(pc.equal(rows.column("_op"), "upsert")).as_py()
        # The hash of the rows as psycopg reads them, built into Arrow independently of COPY.
        read_by_psycopg = pa.Table.from_pylist(expected, schema=spec.arrow_schema)
        expected_hashes = row_hashes(read_by_psycopg, spec.column_names)
        assert rows.column("_content_hash").to_pylist() == expected_hashes.to_pylist(), table
    address = landed(s3_lake, summary, "address")
    assert address.column("address_line_2").null_count == 20
    assert "" not in address.column("address_line_2").to_pylist()
    latest_change = max(
        fetch(source_feb, f"SELECT max(last_updated) FROM {source_table(t).quoted}")[0][0]
        for t in LOAD_ORDER
    )
    assert committed_watermark(s3_lake) == latest_change.replace(tzinfo=UTC)
    manifest = get_json(s3_lake, summary["manifest_key"])
    assert manifest["sequence"] == 1
    assert set(manifest["tables"]) == set(LOAD_ORDER)


def test_feb_to_nov_incremental_then_full_scan_then_nothing(
    source_feb: DbSettings, s3_lake: S3Lake, snapshots: Path
) -> None:
    extract(source_feb, s3_lake, FEB_END)
    before = {table: versions(source_feb, table) for table in SILENTLY_EDITED}
    load_snapshot(source_feb, snapshot_path(snapshots, "2024-11-15"))

    incremental = extract(source_feb, s3_lake, NOV_END)
    assert incremental["full_scan"] is False
    assert incremental["rows"] == NOV_NEW
    payments = landed(s3_lake, incremental, "payment")
    flipped = payments.filter(pc.less_equal(payments.column("payment_id"), 9899))
    assert flipped.num_rows == 30
    assert all(flipped.column("paid").to_pylist())

    scan = extract(source_feb, s3_lake, NOV_END, full_scan=True)
    assert scan["full_scan"] is True
    assert scan["rows"] == {t: SILENTLY_EDITED.get(t, 0) for t in LOAD_ORDER}
    for table, old in before.items():
        now = versions(source_feb, table)
        edited = sorted(
            pk
            for pk, (updated, digest) in old.items()
            if now[pk][0] == updated and now[pk][1] != digest
        )
        rows = landed(s3_lake, scan, table)
        assert rows.column(source_table(table).primary_key).to_pylist() == edited

    again = extract(source_feb, s3_lake, NOV_END)
    assert again["batch_id"] is None
    assert sum(again["rows"].values()) == 0
    rescan = extract(source_feb, s3_lake, NOV_END, full_scan=True)
    assert rescan["batch_id"] is not None  # a full scan always commits, to record itself
    assert sum(rescan["rows"].values()) == 0
    assert get_json(s3_lake, rescan["manifest_key"])["sequence"] == 4


def test_rerunning_windows_lands_nothing_and_overwrites_nothing(
    source_feb: DbSettings, s3_lake: S3Lake
) -> None:
    extract(source_feb, s3_lake, FEB_END)
    lake_before = objects(s3_lake)
    for end in (FEB_END, datetime(2023, 6, 1, tzinfo=UTC), NOV_END):
        assert extract(source_feb, s3_lake, end)["batch_id"] is None
    assert objects(s3_lake) == lake_before


def test_row_committed_late_within_the_overlap_is_landed(
    source_feb: DbSettings, s3_lake: S3Lake
) -> None:
    extract(source_feb, s3_lake, FEB_END)
    (watermark,) = fetch(source_feb, "SELECT max(last_updated) FROM sales_order")[0]
    columns = [c.name for c in source_table("sales_order").columns if c.name != "sales_order_id"]
    copy_from = ", ".join(
        "%s" if name in ("created_at", "last_updated") else f'"{name}"' for name in columns
    )
    for new_id, stamp in (
        (100001, watermark - timedelta(minutes=5)),
        (100002, watermark - timedelta(minutes=30)),
    ):
        execute(
            source_feb,
            f"INSERT INTO sales_order (sales_order_id, {', '.join(columns)})"
            f" SELECT %s, {copy_from} FROM sales_order WHERE sales_order_id = 1",
            (new_id, stamp, stamp),
        )
    late = extract(source_feb, s3_lake, FEB_END)
    assert late["rows"]["sales_order"] == 1
    assert landed(s3_lake, late, "sales_order").column("sales_order_id").to_pylist() == [100001]
    # Too late for the overlap: only the full scan finds it.
    scan = extract(source_feb, s3_lake, FEB_END, full_scan=True)
    assert landed(s3_lake, scan, "sales_order").column("sales_order_id").to_pylist() == [100002]


@pytest.mark.parametrize("allowed", [3, 10])  # 10: every object but the manifest
def test_crash_before_the_manifest_is_recovered_by_the_next_run(
    source_feb: DbSettings, s3_lake: S3Lake, snapshots: Path, allowed: int
) -> None:
    extract(source_feb, s3_lake, FEB_END)
    load_snapshot(source_feb, snapshot_path(snapshots, "2024-11-15"))
    committed = newest(s3_lake)
    failing = FailingLake(s3_lake, allowed)
    with pytest.raises(LakeError, match="injected failure"):
        extract(source_feb, failing, NOV_END)
    assert len(failing.written) == allowed
    assert newest(s3_lake) == committed  # the crashed batch is invisible
    recovered = extract(source_feb, s3_lake, NOV_END)
    assert recovered["rows"] == NOV_NEW
    assert extract(source_feb, s3_lake, NOV_END)["batch_id"] is None


class PayloadRecordingLake(ReadsThrough):
    """The real lake, noting for each write whether it came as bytes or from a file."""

    def __init__(self, inner: Lake) -> None:
        self.inner, self.uri = inner, inner.uri
        self.payloads: dict[str, Payload] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: Payload) -> None:
        with self._lock:
            self.payloads[key] = data
        self.inner.put(key, data)


def assert_no_reading_left(db: DbSettings) -> None:
    """No thread still reading rows and, once the server has seen the disconnects, no session
    of the run's row connections (the next table is begun before the one before is landed)."""
    assert [t for t in threading.enumerate() if t.name == "source-rows"] == []
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'totes-extract-rows'"
    deadline = time.monotonic() + 10
    while fetch(db, query) != [(0,)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fetch(db, query) == [(0,)]


def test_objects_are_built_on_local_disk_and_nothing_is_left_there(
    source_feb: DbSettings, s3_lake: S3Lake, spools: Path
) -> None:
    """A warm Lambda keeps its /tmp: the objects a run built there must not pile up."""
    with pytest.raises(LakeError, match="injected failure"):
        extract(source_feb, FailingLake(s3_lake, 3), FEB_END)
    assert list(spools.iterdir()) == []
    assert_no_reading_left(source_feb)
    recording = PayloadRecordingLake(s3_lake)
    extract(source_feb, recording, FEB_END)
    from_files = {k: v for k, v in recording.payloads.items() if isinstance(v, Path)}
    # Every data and state object, none of them read into memory to be written.
    assert len(from_files) == 2 * len(LOAD_ORDER)
    assert all(path.parent.parent == spools for path in from_files.values())
    assert list(spools.iterdir()) == []


def test_a_full_local_disk_stops_the_run_naming_the_table_and_the_setting(
    source_feb: DbSettings,
    tmp_path: Path,
    small_disk: Callable[[str, int], subprocess.CompletedProcess[str]],
) -> None:
    lake = tmp_path / "lake"
    code = f"""
import sys
from datetime import UTC, datetime
from pathlib import Path
from totes.errors import TotesError
from totes.extract.extractor import run_extract
from totes.lake import LocalLake
from totes.settings import DbSettings, ExtractSettings
try:
    run_extract(DbSettings(**{asdict(source_feb)!r}), LocalLake(Path({str(lake)!r})),
                run_id="t", window_start=None, window_end=datetime.now(UTC), full_scan=True,
                settings=ExtractSettings())
except TotesError as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
"""
    done = small_disk(code, 100_000)  # the larger tables' data objects do not fit
    assert done.returncode == 3, done.stderr
    assert re.search(r"^\[extract table=\w+\] the local disk is too small", done.stderr, re.M)
    assert "lambda_ephemeral_storage_mb" in done.stderr
    assert newest(LocalLake(lake)) is None


def test_source_down_raises_source_error_and_writes_nothing(
    source_feb: DbSettings, s3_lake: S3Lake
) -> None:
    down = DbSettings(source_feb.host, free_port(), source_feb.user, "secret-pw", "totes")
    with pytest.raises(SourceError, match="cannot connect to the source database") as info:
        extract(down, s3_lake, FEB_END)
    assert "secret-pw" not in str(info.value)
    assert objects(s3_lake) == {}


def test_missing_table_raises_source_error_naming_it(
    source_feb: DbSettings, s3_lake: S3Lake
) -> None:
    execute(source_feb, "DROP TABLE payment")
    with pytest.raises(SourceError, match="table=payment"):
        extract(source_feb, s3_lake, FEB_END)
    assert objects(s3_lake) == {}
    # payment, the last table, failed as it was begun, while transaction was still being landed.
    assert_no_reading_left(source_feb)


def test_new_source_column_is_landed_and_logged(
    source_feb: DbSettings, s3_lake: S3Lake, capsys: pytest.CaptureFixture[str]
) -> None:
    extract(source_feb, s3_lake, FEB_END)
    execute(source_feb, "ALTER TABLE currency ADD COLUMN symbol_rank integer")
    execute(
        source_feb,
        "UPDATE currency SET symbol_rank = 7, last_updated = %s WHERE currency_id = 2",
        (datetime(2024, 2, 23, 12),),
    )
    summary = extract(source_feb, s3_lake, FEB_END)
    rows = landed(s3_lake, summary, "currency")
    assert rows.column("symbol_rank").to_pylist() == ["7"]
    assert rows.schema.field("symbol_rank").type == pa.string()
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line[:1] == "{"]
    (drift,) = [r for r in logged if r["message"] == "extract.schema_drift"]
    assert (drift["level"], drift["table"], drift["new_columns"]) == (
        "WARNING",
        "currency",
        ["symbol_rank"],
    )
    # the new column is not part of the content hash: nothing else re-versions
    assert summary["rows"]["currency"] == 1


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("ALTER TABLE design DROP COLUMN file_name", r"table=design.*file_name is missing"),
        (
            "ALTER TABLE sales_order ALTER COLUMN unit_price TYPE double precision",
            r"table=sales_order.*unit_price changed type",
        ),
    ],
)
def test_missing_or_retyped_column_fails_before_anything_is_written(
    source_feb: DbSettings, s3_lake: S3Lake, statement: str, message: str
) -> None:
    execute(source_feb, statement)
    with pytest.raises(SchemaDriftError, match=message):
        extract(source_feb, s3_lake, FEB_END)
    assert objects(s3_lake) == {}


def test_vanished_key_lands_a_tombstone_with_its_last_values(
    source_feb: DbSettings, s3_lake: S3Lake
) -> None:
    first = extract(source_feb, s3_lake, FEB_END)
    last_values = landed(s3_lake, first, "payment").filter(pc.equal(pc.field("payment_id"), 42))
    execute(source_feb, "DELETE FROM payment WHERE payment_id = 42")
    assert extract(source_feb, s3_lake, FEB_END)["batch_id"] is None  # incremental cannot see it
    scan = extract(source_feb, s3_lake, FEB_END, full_scan=True)
    assert scan["rows"]["payment"] == 1
    tombstone = landed(s3_lake, scan, "payment")
    assert tombstone.column("_op").to_pylist() == ["delete"]
    assert tombstone.drop_columns(["_op"]).equals(last_values.drop_columns(["_op"]))
    manifest = get_json(s3_lake, scan["manifest_key"])["tables"]["payment"]
    assert (manifest["upserts"], manifest["deletes"]) == (0, 1)
    state = read_parquet(s3_lake, manifest["state_key"])
    assert 42 not in state.column("pk").to_pylist()
    assert state.num_rows == 9899 - 1
    assert extract(source_feb, s3_lake, FEB_END, full_scan=True)["rows"]["payment"] == 0


def test_daily_cadence_scans_on_the_first_run_of_each_utc_day(
    source_empty: DbSettings, s3_lake: S3Lake
) -> None:
    day1 = datetime(2024, 3, 4, 0, 20, tzinfo=UTC)
    first = extract(source_empty, s3_lake, day1, cadence="daily")
    assert first["full_scan"] is True
    assert first["batch_id"] is not None  # an empty full scan still commits
    later = extract(source_empty, s3_lake, day1 + timedelta(hours=5), cadence="daily")
    assert (later["full_scan"], later["batch_id"]) == (False, None)
    next_day = extract(source_empty, s3_lake, day1 + timedelta(days=1), cadence="daily")
    assert next_day["full_scan"] is True
    assert len(list(s3_lake.list(MANIFEST_PREFIX))) == 2


def _as_legacy(lake: S3Lake, legacy: S3Lake, source: DbSettings) -> None:
    """Copy ``lake`` to ``legacy`` as the extract wrote it before the Arrow content hash: state
    hashes computed by PostgreSQL as ``md5(ROW(<known columns>)::text)`` and a manifest that
    names no hash definition."""
    for key in lake.list(""):
        data = lake.get(key)
        if key.startswith(MANIFEST_PREFIX):
            document = json.loads(data)
            document.pop("content_hash")
            data = json.dumps(document).encode()
        elif key.startswith(STATE_PREFIX):
            table = source_table(key[len(STATE_PREFIX) :].split("/", 1)[0])
            state = read_parquet(lake, key)
            md5 = dict((pk, digest) for pk, (_, digest) in versions(source, table.name).items())
            legacy_hashes = pa.array([md5[pk] for pk in state.column("pk").to_pylist()])
            state = state.set_column(2, "content_hash", legacy_hashes)
            data = parquet_bytes(state)
        legacy.put(key, data)


def test_states_of_the_md5_hash_are_rehashed_once_and_nothing_is_landed_again(
    source_feb: DbSettings, s3_lake: S3Lake
) -> None:
    first = extract(source_feb, s3_lake, FEB_END)
    legacy = S3Lake(s3_lake.bucket, "legacy", client=s3_lake.client)
    _as_legacy(s3_lake, legacy, source_feb)
    assert load_previous(legacy).content_hash == LEGACY_SCHEME

    upgraded = extract(source_feb, legacy, FEB_END)
    assert upgraded["full_scan"] is True  # forced: every table's state is rewritten
    assert upgraded["rows"] == {table: 0 for table in LOAD_ORDER}
    manifest = get_json(legacy, upgraded["manifest_key"])
    assert manifest["content_hash"] == SCHEME
    fresh = get_json(s3_lake, first["manifest_key"])
    for table in LOAD_ORDER:
        rehashed = read_parquet(legacy, manifest["tables"][table]["state_key"])
        assert rehashed.column("content_hash").equals(
            read_parquet(s3_lake, fresh["tables"][table]["state_key"]).column("content_hash")
        ), table
        # Each state row still points at the batch that landed its version.
        assert set(rehashed.column("batch_id").to_pylist()) == {first["batch_id"]}

    assert extract(source_feb, legacy, FEB_END)["batch_id"] is None  # once only
    execute(source_feb, "UPDATE design SET design_name = 'silently' WHERE design_id = 8")
    scan = extract(source_feb, legacy, FEB_END, full_scan=True)
    assert scan["rows"] == {table: int(table == "design") for table in LOAD_ORDER}
    assert landed(legacy, scan, "design").column("design_id").to_pylist() == [8]

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from totes.batches import dated_key
from totes.contracts.ingestion import TableEntry, landing_schema
from totes.extract import capture
from totes.extract.capture import capture_table
from totes.extract.diff import CAPTURED_SCHEMA, STATE_SCHEMA, NewState
from totes.lake import S3Lake, read_parquet
from totes.tables import source_table

CURRENCY = source_table("currency")
T = datetime(2024, 1, 1, 9)
B1 = "20240101T090000000Z-00000001"
B2 = "20240102T090000000Z-00000002"


def _batch(rows: list[tuple[int, str, datetime, str]]) -> pa.RecordBatch:
    schema = landing_schema(CURRENCY, []).remove(5)  # the reader yields no _op column
    return pa.RecordBatch.from_pylist(
        [
            {
                "currency_id": pk,
                "currency_code": code,
                "created_at": T,
                "last_updated": updated,
                "_content_hash": f"{pk}-{code}",
            }
            for pk, code, updated, _ in rows
        ],
        schema=schema,
    )


def _capture(
    lake: S3Lake,
    batches: list[pa.RecordBatch],
    previous: TableEntry,
    batch_id: str,
    *,
    full_scan: bool,
) -> TableEntry:
    # The lake here writes at once, so the spool may go when the capture returns.
    with tempfile.TemporaryDirectory() as spool:
        return capture_table(
            batches,
            lake=lake,
            table=CURRENCY,
            extras=[],
            previous=previous,
            batch_id=batch_id,
            upper=T + timedelta(days=2),
            full_scan=full_scan,
            overlap=timedelta(minutes=10),
            spool=Path(spool),
        ).entry


def test_full_scan_lands_changes_and_tombstones_in_key_order(s3_lake: S3Lake) -> None:
    first = _capture(
        s3_lake,
        [_batch([(1, "GBP", T, ""), (2, "USD", T, "")]), _batch([(3, "EUR", T, "")])],
        TableEntry(),
        B1,
        full_scan=False,
    )
    assert (first.rows, first.watermark, first.key) == (3, T, dated_key("currency", B1))
    assert first.tail is not None
    assert first.tail.fingerprint.rows == 3

    later = T + timedelta(hours=1)
    second = _capture(
        s3_lake,
        [
            _batch(
                [
                    (1, "GBP", T, ""),
                    (3, "EUX", later, ""),
                    (4, "JPY", later + timedelta(days=5), ""),
                ]
            )
        ],
        first,
        B2,
        full_scan=True,
    )
    rows = read_parquet(s3_lake, dated_key("currency", B2))
    assert rows.column("currency_id").to_pylist() == [2, 3]  # 4 is after the window end
    assert rows.column("_op").to_pylist() == ["delete", "upsert"]
    assert rows.column("currency_code").to_pylist() == ["USD", "EUX"]
    assert (second.upserts, second.deletes, second.watermark) == (1, 1, later)
    assert second.state_key is not None
    state = read_parquet(s3_lake, second.state_key)
    assert state.column("pk").to_pylist() == [1, 3]
    assert state.column("batch_id").to_pylist() == [B1, B2]


def test_nothing_new_writes_no_object(s3_lake: S3Lake) -> None:
    first = _capture(s3_lake, [_batch([(1, "GBP", T, "")])], TableEntry(), B1, full_scan=False)
    again = _capture(s3_lake, [_batch([(1, "GBP", T, "")])], first, B2, full_scan=False)
    assert (again.key, again.rows, again.state_key) == (None, 0, first.state_key)
    assert not s3_lake.exists(dated_key("currency", B2))


def test_the_state_object_is_written_in_slices_in_the_state_schema(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    old = pa.Table.from_pylist(
        [{"pk": 1, "last_updated": T, "content_hash": "h1", "batch_id": B1}], schema=STATE_SCHEMA
    )
    captured = pa.Table.from_pylist(
        [{"pk": k, "last_updated": T, "content_hash": f"h{k}"} for k in (2, 3, 4, 5)],
        schema=CAPTURED_SCHEMA,
    )
    new = NewState(old, captured, B2)
    monkeypatch.setattr(capture, "STATE_ROW_GROUP_ROWS", 2)
    path = tmp_path / "state.parquet"
    capture.write_state(new, path)
    assert pq.ParquetFile(path).metadata.num_row_groups == 3
    written = pq.read_table(path)
    assert written.schema == STATE_SCHEMA
    assert written.equals(new.table())
    assert written.column("batch_id").to_pylist() == [B1, B2, B2, B2, B2]

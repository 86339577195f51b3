from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from totes.batches import dated_key
from totes.contracts.ingestion import TableEntry, landing_schema
from totes.extract import capture, diff
from totes.extract.capture import capture_table
from totes.extract.diff import STATE_SCHEMA
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


def _state_rows(keys: list[int], batch_id: str) -> pa.Table:
    return pa.Table.from_pylist(
        [{"pk": k, "last_updated": T, "content_hash": f"h{k}", "batch_id": batch_id} for k in keys],
        schema=STATE_SCHEMA,
    )


def _row_groups(path: Path) -> list[pq.RowGroupMetaData]:
    metadata = pq.ParquetFile(path).metadata
    return [metadata.row_group(i) for i in range(metadata.num_row_groups)]


def test_a_new_state_begins_at_the_first_change_with_the_unchanged_rows_before_it(
    tmp_path: Path,
) -> None:
    previous = tmp_path / "old.parquet"
    pq.write_table(_state_rows([1, 2, 3, 4, 5, 6], B1), previous, row_group_size=2)
    pieces = list(capture.state_pieces(previous))
    assert [p.num_rows for p in pieces] == [6]  # read back in pieces of STATE_ROW_GROUP_ROWS

    new = capture.NewStateFile(tmp_path / "new.parquet", previous)
    first, third = _state_rows([1, 2], B1), _state_rows([5, 6], B1)
    new.add(diff.RangeDiff(None, STATE_SCHEMA.empty_table(), first, True))
    assert not new.begun
    replaced = pa.concat_tables([_state_rows([3], B1), _state_rows([4], B2)])
    new.add(diff.RangeDiff(None, STATE_SCHEMA.empty_table(), replaced, False))
    new.add(diff.RangeDiff(None, STATE_SCHEMA.empty_table(), third, True))
    new.close()
    assert new.begun
    written = pq.read_table(new.out.path)
    assert written.column("pk").to_pylist() == [1, 2, 3, 4, 5, 6]
    assert written.column("batch_id").to_pylist() == [B1, B1, B1, B2, B1, B1]


def test_a_table_with_nothing_new_writes_no_state(tmp_path: Path) -> None:
    new = capture.NewStateFile(tmp_path / "new.parquet", None)
    new.add(diff.RangeDiff(None, STATE_SCHEMA.empty_table(), _state_rows([1], B1), True))
    new.close()
    assert not new.out.path.exists()

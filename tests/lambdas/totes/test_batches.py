from __future__ import annotations

from datetime import UTC, datetime, timedelta

from totes.batches import (
    batch_id_of_manifest,
    batch_time,
    dated_key,
    manifest_key,
    new_batch_id,
)
from totes.lake import Lake, latest_manifest_key, manifest_keys_newer_than


def test_batch_ids_sort_by_time_and_keep_milliseconds() -> None:
    t0 = datetime(2026, 11, 25, 23, 15, 0, 123456, tzinfo=UTC)
    first, second = new_batch_id(t0), new_batch_id(t0 + timedelta(milliseconds=1))
    assert first.startswith("20261125T231500123Z-")
    assert first < second
    assert batch_time(first) == t0.replace(microsecond=123000)
    assert dated_key("sales_order", first) == f"sales_order/2026/11/25/{first}.parquet"


def test_manifest_keys_list_newest_first(local_lake: Lake) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [new_batch_id(t0 + timedelta(minutes=20 * i)) for i in range(5)]
    for batch_id in ids:
        local_lake.put(manifest_key(batch_id), b"{}")
    assert batch_id_of_manifest(manifest_key(ids[2])) == ids[2]
    latest = latest_manifest_key(local_lake)
    assert latest is not None
    assert batch_id_of_manifest(latest) == ids[-1]
    newer = manifest_keys_newer_than(local_lake, ids[1])
    assert [batch_id_of_manifest(k) for k in newer] == ids[2:]
    assert len(manifest_keys_newer_than(local_lake, None)) == 5
    assert manifest_keys_newer_than(local_lake, ids[-1]) == []

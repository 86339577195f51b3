from __future__ import annotations

from datetime import UTC, datetime

import pytest

from totes.contracts.ingestion import (
    Fingerprint,
    Previous,
    TableEntry,
    Tail,
    build_manifest,
    parse_previous,
)
from totes.errors import LakeError


def test_manifest_round_trips_what_the_next_run_needs() -> None:
    tail = Tail(datetime(2024, 2, 23, 11, 1), Fingerprint(2, datetime(2024, 2, 23, 11, 11), 7))
    entry = TableEntry(
        key="sales_order/2024/02/23/b.parquet",
        rows=3,
        upserts=2,
        deletes=1,
        watermark=datetime(2024, 2, 23, 11, 11, 10, 72000),
        state_key="_state/sales_order/b.parquet",
        schema=[{"name": "sales_order_id", "type": "int64"}],
        tail=tail,
    )
    document = build_manifest(
        batch_id="20240223T111500123Z-ab12cd34",
        previous=Previous(batch_id="20240223T101500123Z-00000000", sequence=4),
        run_id="run",
        window_start=None,
        window_end=datetime(2024, 2, 23, 11, 20, tzinfo=UTC),
        full_scan=True,
        last_full_scan_at=datetime(2024, 2, 23, 11, 20, tzinfo=UTC),
        committed_at=datetime(2024, 2, 23, 11, 15, tzinfo=UTC),
        tables={"sales_order": entry},
    )
    assert document["sequence"] == 5
    assert document["previous_batch_id"] == "20240223T101500123Z-00000000"
    assert document["tables"]["sales_order"]["watermark"] == "2024-02-23T11:11:10.072"
    previous = parse_previous("_manifests/k.json", document)
    assert previous.sequence == 5
    assert previous.batch_id == "20240223T111500123Z-ab12cd34"
    assert previous.last_full_scan_at == datetime(2024, 2, 23, 11, 20, tzinfo=UTC)
    again = previous.table("sales_order")
    assert again.watermark == entry.watermark
    assert again.state_key == entry.state_key
    assert again.tail == tail
    carried = again.carried(entry.schema)
    assert (carried.key, carried.rows, carried.watermark) == (None, 0, entry.watermark)


def test_unknown_table_of_an_empty_previous_starts_from_nothing() -> None:
    assert Previous().table("design") == TableEntry()


def test_unreadable_manifest_is_a_lake_error() -> None:
    with pytest.raises(LakeError, match=r"_manifests/x\.json"):
        parse_previous("_manifests/x.json", {"format": 1, "kind": "ingestion"})

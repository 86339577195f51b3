from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from totes.errors import LakeError, SourceError
from totes.extract.diff import (
    STATE_SCHEMA,
    Fingerprint,
    StateIndex,
    TailCount,
    aligned,
    diff_range,
    empty_state,
    tail_fingerprint,
)


def _state(rows: list[tuple[int, datetime, str, str]]) -> pa.Table:
    return pa.Table.from_pylist(
        [dict(zip(STATE_SCHEMA.names, row, strict=True)) for row in rows], schema=STATE_SCHEMA
    )


T1 = datetime(2024, 1, 1, 10)
T2 = datetime(2024, 1, 1, 11)
UPPER = datetime(2024, 1, 2)
STATE = _state([(1, T1, "h1", "b1"), (3, T1, "h3", "b1"), (5, T2, "h5", "b2")])
SOURCE = pa.schema(
    [("id", pa.int64()), ("last_updated", STATE_SCHEMA.field("last_updated").type)]
).append(pa.field("_content_hash", pa.string()))


def _rows(rows: list[tuple[int, datetime, str]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(
        [dict(zip(SOURCE.names, row, strict=True)) for row in rows], schema=SOURCE
    )


def test_changed_flags_new_keys_and_new_hashes_only() -> None:
    index = StateIndex(STATE)
    keys = pa.array([0, 1, 3, 4, 5, 9], pa.int64())
    hashes = pa.array(["x", "h1", "changed", "y", "h5", "z"])
    assert index.changed(keys, hashes).to_pylist() == [True, False, True, True, False, True]


def test_everything_is_changed_against_an_empty_state() -> None:
    index = StateIndex(empty_state())
    assert index.changed(pa.array([1, 2], pa.int64()), pa.array(["a", "b"])).to_pylist() == [
        True,
        True,
    ]


def test_missing_from_returns_vanished_state_rows() -> None:
    index = StateIndex(STATE)
    assert index.missing_from(np.array([1, 5, 7], dtype=np.int64)).column("pk").to_pylist() == [3]
    assert index.missing_from(np.array([], dtype=np.int64)).num_rows == 3


def test_tail_fingerprint_counts_rows_since_the_bound() -> None:
    assert tail_fingerprint(STATE, T2) == Fingerprint(1, T2, 5)
    assert tail_fingerprint(STATE, None) == Fingerprint(3, T2, 9)
    assert tail_fingerprint(STATE, datetime(2025, 1, 1)) == Fingerprint(0, None, 0)


def test_a_tail_summed_range_by_range_is_the_whole_tables() -> None:
    count = TailCount(T1)
    for offset in range(3):
        count.add(STATE.slice(offset, 1))
    assert count.fingerprint() == tail_fingerprint(STATE, T1)


def test_a_range_lands_new_and_changed_rows_and_keeps_the_rest() -> None:
    part = diff_range(
        STATE,
        _rows([(0, T2, "h0"), (1, T1, "h1"), (3, T2, "h3b")]),
        pk="id",
        batch_id="b3",
        full_scan=False,
        upper=UPPER,
    )
    assert part.landed is not None
    assert part.landed.column("id").to_pylist() == [0, 3]
    assert part.vanished.num_rows == 0
    assert not part.unchanged
    assert part.state.to_pylist() == [
        {"pk": 0, "last_updated": T2, "content_hash": "h0", "batch_id": "b3"},
        {"pk": 1, "last_updated": T1, "content_hash": "h1", "batch_id": "b1"},
        {"pk": 3, "last_updated": T2, "content_hash": "h3b", "batch_id": "b3"},
        {"pk": 5, "last_updated": T2, "content_hash": "h5", "batch_id": "b2"},
    ]


def test_a_full_scan_finds_vanished_keys_and_leaves_late_rows_for_the_next_run() -> None:
    late = UPPER + timedelta(minutes=1)
    part = diff_range(
        STATE,
        _rows([(1, T1, "h1"), (5, late, "h5-late")]),
        pk="id",
        batch_id="b3",
        full_scan=True,
        upper=UPPER,
    )
    assert part.landed is None
    assert part.vanished.column("pk").to_pylist() == [3]
    assert part.state.column("pk").to_pylist() == [1, 5]
    assert part.state.column("content_hash").to_pylist() == ["h1", "h5"]


def test_a_range_the_source_has_no_rows_for() -> None:
    kept = diff_range(STATE, None, pk="id", batch_id="b3", full_scan=False, upper=UPPER)
    assert (kept.unchanged, kept.state) == (True, STATE)
    gone = diff_range(STATE, None, pk="id", batch_id="b3", full_scan=True, upper=UPPER)
    assert not gone.unchanged
    assert gone.vanished == STATE
    assert gone.state.num_rows == 0


def _pieces(table: pa.Table, size: int) -> list[pa.Table]:
    return [table.slice(i, size) for i in range(0, table.num_rows, size)]


def _batches(batch: pa.RecordBatch, size: int) -> list[pa.RecordBatch]:
    return [batch.slice(i, size) for i in range(0, batch.num_rows, size)]


def test_aligned_pairs_the_same_key_ranges() -> None:
    state = _state([(k, T1, f"h{k}", "b1") for k in (2, 4, 6, 8, 10)])
    rows = _rows([(k, T1, f"h{k}") for k in (1, 4, 5, 11, 12)])
    pairs = list(aligned(_pieces(state, 2), _batches(rows, 2), "id", table="t"))
    seen = [
        (p.column("pk").to_pylist(), [] if r is None else r.column("id").to_pylist())
        for p, r in pairs
    ]
    # Each pair ends at the smaller last key of the two sides' current pieces.
    assert seen == [([2, 4], [1, 4]), ([6, 8], [5]), ([10], []), ([], [11]), ([], [12])]
    for state_part, rows_part in pairs:  # each pair covers a range no earlier pair did
        assert state_part.num_rows or rows_part is not None


def test_aligned_refuses_source_rows_out_of_key_order() -> None:
    rows = [_rows([(1, T1, "a"), (3, T1, "b")]), _rows([(2, T1, "c")])]
    with pytest.raises(SourceError, match="did not arrive in id order") as failure:
        list(aligned([], rows, "id", table="payment"))
    assert failure.value.table == "payment"


def test_aligned_refuses_a_state_out_of_key_order() -> None:
    state = _state([(3, T1, "h", "b1"), (1, T1, "h", "b1")])
    with pytest.raises(LakeError, match="not in key order"):
        list(aligned([state], [], "id", table="payment"))


def _reference(
    state: pa.Table, rows: pa.RecordBatch, batch_id: str, full_scan: bool
) -> tuple[list[int], list[int], list[dict[str, object]]]:
    """The whole-table diff, written the plain way: landed keys, vanished keys, new state."""
    old = {r["pk"]: r for r in state.to_pylist()}
    landed, seen, new = [], set(), dict(old)
    for row in rows.to_pylist():
        seen.add(row["id"])
        known = old.get(row["id"])
        if known is not None and known["content_hash"] == row["_content_hash"]:
            continue
        if full_scan and row["last_updated"] >= UPPER:
            continue
        landed.append(row["id"])
        new[row["id"]] = {
            "pk": row["id"],
            "last_updated": row["last_updated"],
            "content_hash": row["_content_hash"],
            "batch_id": batch_id,
        }
    vanished = sorted(k for k in old if full_scan and k not in seen)
    for key in vanished:
        del new[key]
    return landed, vanished, [new[k] for k in sorted(new)]


@pytest.mark.parametrize("full_scan", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_range_by_range_equals_the_whole_table_diff(full_scan: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(1, 3_000, 1_200))
    in_state = keys[rng.random(len(keys)) < 0.6]
    in_source = keys[rng.random(len(keys)) < 0.7]
    state = _state([(int(k), T1, f"h{k}", f"b{k % 3}") for k in in_state])
    edited = rng.random(len(in_source)) < 0.2
    late = rng.random(len(in_source)) < 0.05
    rows = _rows(
        [
            (int(k), UPPER if is_late else T2, f"h{k}x" if is_edited else f"h{k}")
            for k, is_edited, is_late in zip(in_source, edited, late, strict=True)
        ]
    )
    landed: list[int] = []
    vanished: list[int] = []
    new_state: list[dict[str, object]] = []
    pieces = _pieces(state, int(rng.integers(1, 200)))
    for old, part_rows in aligned(
        pieces, _batches(rows, int(rng.integers(1, 200))), "id", table="t"
    ):
        part = diff_range(old, part_rows, pk="id", batch_id="new", full_scan=full_scan, upper=UPPER)
        landed += [] if part.landed is None else part.landed.column("id").to_pylist()
        vanished += part.vanished.column("pk").to_pylist()
        new_state += part.state.to_pylist()
        if part.unchanged:
            assert part.state.to_pylist() == old.to_pylist()
    assert (landed, vanished, new_state) == _reference(state, rows, "new", full_scan)

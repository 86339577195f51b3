from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from totes.extract.diff import (
    CAPTURED_SCHEMA,
    STATE_SCHEMA,
    Fingerprint,
    NewState,
    StateIndex,
    empty_state,
    keys_ascend,
    merge_state,
    merge_state_sorted,
    tail_fingerprint,
    with_batch_id,
)


def _state(rows: list[tuple[int, datetime, str, str]]) -> pa.Table:
    return pa.Table.from_pylist(
        [dict(zip(STATE_SCHEMA.names, row, strict=True)) for row in rows], schema=STATE_SCHEMA
    )


T1 = datetime(2024, 1, 1, 10)
T2 = datetime(2024, 1, 1, 11)
STATE = _state([(1, T1, "h1", "b1"), (3, T1, "h3", "b1"), (5, T2, "h5", "b2")])


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


def test_merge_replaces_captured_keys_drops_deleted_and_stays_sorted() -> None:
    captured = _state([(0, T2, "h0", "b3"), (3, T2, "h3b", "b3")])
    merged = merge_state(STATE, captured, np.array([5], dtype=np.int64), "b3").table()
    assert merged.schema == STATE_SCHEMA
    assert merged.to_pylist() == [
        {"pk": 0, "last_updated": T2, "content_hash": "h0", "batch_id": "b3"},
        {"pk": 1, "last_updated": T1, "content_hash": "h1", "batch_id": "b1"},
        {"pk": 3, "last_updated": T2, "content_hash": "h3b", "batch_id": "b3"},
    ]


def test_tail_fingerprint_counts_rows_since_the_bound() -> None:
    assert tail_fingerprint(STATE, T2) == Fingerprint(1, T2, 5)
    assert tail_fingerprint(STATE, None) == Fingerprint(3, T2, 9)
    assert tail_fingerprint(STATE, datetime(2025, 1, 1)) == Fingerprint(0, None, 0)


def _versions(keys: np.ndarray, batch_ids: list[str], start: datetime) -> pa.Table:
    """State rows as a run would hold them: md5 hex hashes, rising times, several batches."""
    rng = np.random.default_rng(7)
    times = [start + timedelta(minutes=int(m)) for m in np.sort(rng.integers(0, 10_000, len(keys)))]
    hashes = [hashlib.md5(f"{k}-{start}".encode(), usedforsecurity=False).hexdigest() for k in keys]
    batches = [batch_ids[i % len(batch_ids)] for i in range(len(keys))]
    return pa.Table.from_arrays(
        [
            pa.array(keys, pa.int64()),
            pa.array(times, STATE_SCHEMA.field("last_updated").type),
            pa.array(hashes),
            pa.array(batches),
        ],
        schema=STATE_SCHEMA,
    )


def _captured_chunks(keys: np.ndarray, start: datetime, chunk: int) -> pa.Table:
    """Captured rows as the reader yields them: one chunk per block, no batch id yet."""
    rows = _versions(keys, ["unused"], start).select(CAPTURED_SCHEMA.names)
    return pa.concat_tables([rows.slice(i, chunk) for i in range(0, rows.num_rows, chunk)])


def _general(state: pa.Table, captured: pa.Table, deleted: np.ndarray, batch_id: str) -> pa.Table:
    return merge_state_sorted(state, with_batch_id(captured, batch_id), deleted)


NO_KEYS = np.array([], dtype=np.int64)
B_NEW = "20240301T090000000Z-0000abcd"


@pytest.mark.parametrize("old_rows", [0, 2_000])
def test_the_no_copy_merge_equals_the_general_merge(old_rows: int) -> None:
    rng = np.random.default_rng(1)
    keys = np.unique(rng.integers(1, 50_000, 5_000))
    state = _versions(keys[:old_rows], ["20240101T0-a", "20240102T0-b", "20240103T0-c"], T1)
    captured = _captured_chunks(keys[old_rows:], T2, chunk=700)

    merged = merge_state(state, captured, NO_KEYS, B_NEW)

    assert merged.carried is state  # kept as it is: the no-copy path was taken
    expected = _general(state, captured, NO_KEYS, B_NEW)
    assert merged.table().equals(expected)
    assert merged.table().schema == STATE_SCHEMA
    assert merged.num_rows == expected.num_rows == len(keys)
    assert pa.concat_tables(list(merged.slices(333))).equals(expected)
    assert merged.keys_and_times().equals(expected.select(["pk", "last_updated"]))
    assert tail_fingerprint(merged.keys_and_times(), T2) == tail_fingerprint(expected, T2)


@pytest.mark.parametrize("case", ["replaced", "interleaved", "unordered", "deleted"])
def test_merges_that_need_the_sort_match_the_general_merge(case: str) -> None:
    rng = np.random.default_rng(2)
    keys = np.unique(rng.integers(1, 50_000, 3_000))
    state = _versions(keys[:2_000], ["20240101T0-a", "20240102T0-b"], T1)
    new = {
        "replaced": keys[1_990:],  # ten keys of the state get a new version
        "interleaved": keys[1::2],  # new keys between state keys
        "unordered": keys[2_000:][::-1],
        "deleted": keys[2_000:],
    }[case]
    deleted = keys[[3, 500]] if case == "deleted" else NO_KEYS
    if case == "interleaved":
        state = _versions(keys[::2], ["20240101T0-a"], T1)
    captured = _captured_chunks(new, T2, chunk=400)

    merged = merge_state(state, captured, deleted, B_NEW)

    assert merged.captured.num_rows == 0  # the general path
    table = merged.table()
    assert table.equals(_general(state, captured, deleted, B_NEW))
    assert keys_ascend([table])
    assert not set(deleted) & set(table.column("pk").to_pylist())


def test_keys_ascend_across_tables_and_chunks() -> None:
    def table(*chunks: list[int]) -> pa.Table:
        column = pa.chunked_array([pa.array(c, pa.int64()) for c in chunks], pa.int64())
        return pa.table({"pk": column})

    assert keys_ascend([table([1, 2], [], [5]), table([7, 9])])
    assert keys_ascend([table(), table([1])])
    assert not keys_ascend([table([1, 2], [2, 3])])  # repeated across chunks
    assert not keys_ascend([table([1, 3, 2])])
    assert not keys_ascend([table([1, 5]), table([4])])


def test_an_empty_new_state_is_an_empty_table() -> None:
    empty = NewState(empty_state(), CAPTURED_SCHEMA.empty_table(), B_NEW)
    assert empty.table().equals(empty_state())
    assert list(empty.slices(10)) == []

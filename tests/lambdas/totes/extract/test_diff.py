from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa

from totes.extract.diff import (
    STATE_SCHEMA,
    Fingerprint,
    StateIndex,
    empty_state,
    merge_state,
    tail_fingerprint,
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
    merged = merge_state(STATE, captured, np.array([5], dtype=np.int64))
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

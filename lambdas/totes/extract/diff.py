"""Diffing captured rows against the last captured state (pure: pyarrow and numpy only).

The state holds one row per live primary key, sorted by key: ``(pk, last_updated, content_hash,
batch_id)``. Lookups use binary search on the sorted keys, so a chunk of n rows costs
O(n log state) whatever the number of chunks, with no per-row Python.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from totes.contracts.ingestion import Fingerprint
from totes.keys import AscendingKeys
from totes.tables import TIMESTAMP

STATE_SCHEMA = pa.schema(
    [
        pa.field("pk", pa.int64(), nullable=False),
        pa.field("last_updated", TIMESTAMP, nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("batch_id", pa.string(), nullable=False),
    ]
)
# What a batch captures per row before its batch id is attached: the state without batch_id.
CAPTURED_SCHEMA = pa.schema(list(STATE_SCHEMA)[:3])


def empty_state() -> pa.Table:
    return STATE_SCHEMA.empty_table()


class StateIndex:
    """The state's keys as a sorted numpy array next to their hashes, built once per table."""

    def __init__(self, state: pa.Table) -> None:
        self.state = state
        self.keys: np.ndarray = state.column("pk").to_numpy()
        self.hashes = state.column("content_hash").combine_chunks()

    def __len__(self) -> int:
        return len(self.keys)

    def _positions(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        at = np.searchsorted(self.keys, keys)
        clipped = np.minimum(at, len(self.keys) - 1)
        return clipped, self.keys[clipped] == keys

    def changed(self, keys: pa.Array, hashes: pa.Array) -> pa.BooleanArray:
        """True where (key, hash) is not the last captured version of that key."""
        if len(self.keys) == 0:
            return pa.array(np.ones(len(keys), dtype=bool))
        at, found = self._positions(keys.to_numpy(zero_copy_only=False))
        same_hash = pc.equal(self.hashes.take(pa.array(at)), hashes)
        return pc.invert(pc.and_(pa.array(found), same_hash))

    def missing_from(self, seen_keys: np.ndarray) -> pa.Table:
        """State rows whose key is not among ``seen_keys`` (sorted): vanished from the source."""
        if len(self.keys) == 0:
            return self.state
        if len(seen_keys) == 0:
            return self.state
        at = np.minimum(np.searchsorted(seen_keys, self.keys), len(seen_keys) - 1)
        return self.state.filter(pa.array(seen_keys[at] != self.keys))


def keys_ascend(tables: Sequence[pa.Table]) -> bool:
    """True when the ``pk`` values of ``tables``, read one after another, strictly increase.

    Checked chunk by chunk (numpy views), so it costs no copy of the keys."""
    order = AscendingKeys()
    return all(order.follow(chunk) for table in tables for chunk in table.column("pk").chunks)


def with_batch_id(captured: pa.Table, batch_id: str) -> pa.Table:
    """Captured ``(pk, last_updated, content_hash)`` rows as state rows of ``batch_id``."""
    columns = [captured.column(name) for name in CAPTURED_SCHEMA.names]
    columns.append(pa.chunked_array([pa.repeat(pa.scalar(batch_id), captured.num_rows)]))
    return pa.Table.from_arrays(columns, schema=STATE_SCHEMA)


@dataclass(frozen=True)
class NewState:
    """The state after a batch as two key-ordered runs: ``carried`` state rows (each with its own
    batch id), then ``captured`` rows ``(pk, last_updated, content_hash)`` of ``batch_id``.

    The captured rows' batch id is the same string on every row; it is added only slice by
    slice when the state is written (:meth:`slices`), instead of one copy per row held for the
    whole table."""

    carried: pa.Table
    captured: pa.Table
    batch_id: str

    @property
    def num_rows(self) -> int:
        return self.carried.num_rows + self.captured.num_rows

    def keys_and_times(self) -> pa.Table:
        """``pk`` and ``last_updated`` of every row, in key order (no copy)."""
        fields = [STATE_SCHEMA.field("pk"), STATE_SCHEMA.field("last_updated")]
        columns = [
            pa.chunked_array(
                self.carried.column(f.name).chunks + self.captured.column(f.name).chunks, f.type
            )
            for f in fields
        ]
        return pa.Table.from_arrays(columns, schema=pa.schema(fields))

    def slices(self, rows: int) -> Iterator[pa.Table]:
        """The state rows in key order, ``rows`` at most per slice, in ``STATE_SCHEMA``."""
        for offset in range(0, self.carried.num_rows, rows):
            part = self.carried.slice(offset, rows)
            yield pa.Table.from_arrays(part.columns, schema=STATE_SCHEMA)
        for offset in range(0, self.captured.num_rows, rows):
            yield with_batch_id(self.captured.slice(offset, rows), self.batch_id)

    def table(self) -> pa.Table:
        """The whole state as one table (small states and tests)."""
        parts = list(self.slices(max(self.num_rows, 1)))
        return pa.concat_tables(parts).combine_chunks() if parts else STATE_SCHEMA.empty_table()


def merge_state(
    state: pa.Table, captured: pa.Table, deleted_keys: np.ndarray, batch_id: str
) -> NewState:
    """The state after a batch: ``captured`` rows ``(pk, last_updated, content_hash)`` become
    versions of ``batch_id`` that replace their keys, deleted keys leave.

    When nothing leaves and every captured key comes after the last state key (a first run, or
    a run that captured only new keys, read in key order), the old state followed by the
    captured rows already is the answer, so it is kept as it is: no filter, sort or concatenation
    copy, each of which would hold the whole state again."""
    captured = captured.select(CAPTURED_SCHEMA.names).cast(CAPTURED_SCHEMA)
    if len(deleted_keys) == 0 and keys_ascend([state, captured]):
        return NewState(state, captured, batch_id)
    merged = merge_state_sorted(state, with_batch_id(captured, batch_id), deleted_keys)
    return NewState(merged, CAPTURED_SCHEMA.empty_table(), batch_id)


def merge_state_sorted(state: pa.Table, captured: pa.Table, deleted_keys: np.ndarray) -> pa.Table:
    """The general merge of state rows: any key may be replaced or deleted, captured rows in
    any key order."""
    replaced = np.concatenate([captured.column("pk").to_numpy(), deleted_keys])
    kept = state.filter(pa.array(~np.isin(state.column("pk").to_numpy(), replaced)))
    merged = pa.concat_tables([kept, captured.select(STATE_SCHEMA.names).cast(STATE_SCHEMA)])
    return merged.sort_by("pk").combine_chunks()


def tail_fingerprint(state: pa.Table, since: datetime | None) -> Fingerprint:
    table = state
    if since is not None:
        table = state.filter(
            pc.greater_equal(state.column("last_updated"), pa.scalar(since, TIMESTAMP))
        )
    if table.num_rows == 0:
        return Fingerprint(0, None, 0)
    newest = pc.max(table.column("last_updated")).as_py()
    return Fingerprint(table.num_rows, newest, int(pc.sum(table.column("pk")).as_py()))

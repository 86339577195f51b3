"""Diffing a table's rows against its last captured state, one key range at a time (pure:
pyarrow and numpy only).

The state holds one row per live primary key, sorted by key: ``(pk, last_updated, content_hash,
batch_id)``. The source's rows arrive in key order too, so the two are walked side by side like
a merge join (:func:`aligned`): each step takes the state rows and source rows of one key range,
at most a state row group and a source batch, and everything about the range (what changed,
what vanished, the range's new state) is decided from those alone. Memory is bounded by the
range, not by the table (docs/performance.md, "The extract diffs a key range at a time").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from totes.contracts.ingestion import HASH_COLUMN, Fingerprint
from totes.errors import LakeError, SourceError
from totes.keys import AscendingKeys, is_known
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


def _keys(part: pa.Table | pa.RecordBatch, name: str) -> np.ndarray:
    column = part.column(name)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return np.asarray(column.to_numpy(zero_copy_only=False))


class StateIndex:
    """State rows' keys as a sorted numpy array next to their hashes."""

    def __init__(self, state: pa.Table) -> None:
        self.state = state
        self.keys: np.ndarray = _keys(state, "pk")
        self.hashes = state.column("content_hash").combine_chunks()

    def __len__(self) -> int:
        return len(self.keys)

    def changed(self, keys: pa.Array, hashes: pa.Array) -> pa.BooleanArray:
        """True where (key, hash) is not the last captured version of that key."""
        if len(self.keys) == 0:
            return pa.array(np.ones(len(keys), dtype=bool))
        wanted = np.asarray(keys.to_numpy(zero_copy_only=False))
        at = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        found = self.keys[at] == wanted
        same_hash = pc.equal(self.hashes.take(pa.array(at)), hashes)
        return pc.invert(pc.and_(pa.array(found), same_hash))

    def missing_from(self, seen_keys: np.ndarray) -> pa.Table:
        """State rows whose key is not among ``seen_keys`` (sorted): vanished from the source."""
        if len(self.keys) == 0 or len(seen_keys) == 0:
            return self.state
        return self.state.filter(pc.invert(is_known(self.state.column("pk"), pa.array(seen_keys))))


def with_batch_id(captured: pa.Table, batch_id: str) -> pa.Table:
    """Captured ``(pk, last_updated, content_hash)`` rows as state rows of ``batch_id``."""
    columns = [captured.column(name) for name in CAPTURED_SCHEMA.names]
    columns.append(pa.chunked_array([pa.repeat(pa.scalar(batch_id), captured.num_rows)]))
    return pa.Table.from_arrays(columns, schema=STATE_SCHEMA)


def aligned(
    state: Iterable[pa.Table],
    rows: Iterable[pa.RecordBatch],
    pk: str,
    *,
    table: str,
) -> Iterator[tuple[pa.Table, pa.RecordBatch | None]]:
    """The state rows and source rows, key range by key range: each pair covers the same keys
    (after the previous pair's, up to the smaller of the two sides' last keys), so a step holds
    one state piece and one source batch at most. ``None`` where the source has no rows left.

    Both sides must come in strictly ascending key order (the state is written so, the source
    is read ``ORDER BY`` its key); anything else would pair keys wrongly, so it fails here."""
    state_order, rows_order = AscendingKeys(), AscendingKeys()

    def next_state(pieces: Iterator[pa.Table]) -> pa.Table | None:
        for piece in pieces:
            if piece.num_rows:
                if not state_order.follow(piece.column("pk")):
                    raise LakeError("the extract state is not in key order", table=table)
                return piece
        return None

    def next_rows(batches: Iterator[pa.RecordBatch]) -> pa.RecordBatch | None:
        for batch in batches:
            if batch.num_rows:
                if not rows_order.follow(batch.column(pk)):
                    raise SourceError(
                        f"the source rows did not arrive in {pk} order",
                        table=table,
                        key=str(rows_order.last),
                    )
                return batch
        return None

    pieces, batches = iter(state), iter(rows)
    old, new = next_state(pieces), next_rows(batches)
    while old is not None or new is not None:
        if new is None:
            assert old is not None
            yield old, None
            old = next_state(pieces)
            continue
        if old is None:
            yield empty_state(), new
            new = next_rows(batches)
            continue
        old_keys, new_keys = _keys(old, "pk"), _keys(new, pk)
        bound = min(old_keys[-1], new_keys[-1])
        in_old = int(np.searchsorted(old_keys, bound, side="right"))
        in_new = int(np.searchsorted(new_keys, bound, side="right"))
        yield old.slice(0, in_old), new.slice(0, in_new)
        old = old.slice(in_old) if in_old < old.num_rows else next_state(pieces)
        new = new.slice(in_new) if in_new < new.num_rows else next_rows(batches)


@dataclass(frozen=True)
class RangeDiff:
    """What one key range contributes to the batch."""

    landed: pa.RecordBatch | None  # source rows to land as upserts (None: nothing)
    vanished: pa.Table  # state rows whose key left the source (full scans only)
    state: pa.Table  # the range's state after the batch, in key order
    unchanged: bool  # the range's state is the old one, row for row


def diff_range(
    old: pa.Table,
    rows: pa.RecordBatch | None,
    *,
    pk: str,
    batch_id: str,
    full_scan: bool,
    upper: datetime,
) -> RangeDiff:
    """Diff the source ``rows`` of one key range against the ``old`` state rows of that range.

    A row lands when its key is new or its hash differs from the last captured one. In a full
    scan the rows are every live key of the range: rows at or after ``upper`` only prove a key
    alive (the next incremental run captures them), and state keys absent from the rows have
    vanished. Outside a full scan, keys absent from the rows are simply unchanged."""
    if rows is None:
        if full_scan:
            return RangeDiff(None, old, empty_state(), old.num_rows == 0)
        return RangeDiff(None, empty_state(), old, True)
    index = StateIndex(old)
    mask = index.changed(rows.column(pk), rows.column(HASH_COLUMN))
    if full_scan:
        mask = pc.and_(mask, pc.less(rows.column("last_updated"), pa.scalar(upper, TIMESTAMP)))
    landed = rows if mask.true_count == len(mask) else rows.filter(mask)
    vanished = empty_state()
    if full_scan and len(index):
        vanished = index.missing_from(_keys(rows, pk))
    if landed.num_rows == 0 and vanished.num_rows == 0:
        return RangeDiff(None, vanished, old, True)
    captured = with_batch_id(
        pa.Table.from_arrays(
            [landed.column(pk), landed.column("last_updated"), landed.column(HASH_COLUMN)],
            schema=CAPTURED_SCHEMA,
        ),
        batch_id,
    )
    if len(index) == 0:
        return RangeDiff(landed, vanished, captured, False)
    gone = pa.array(np.concatenate([_keys(landed, pk), _keys(vanished, "pk")]))
    kept = old.filter(pc.invert(is_known(old.column("pk"), gone)))
    state = captured if kept.num_rows == 0 else pa.concat_tables([kept, captured]).sort_by("pk")
    return RangeDiff(landed if landed.num_rows else None, vanished, state, False)


class TailCount:
    """The fingerprint of the state rows changed at or after ``since``, summed range by range."""

    def __init__(self, since: datetime | None) -> None:
        self.since = since
        self.rows = 0
        self.newest: datetime | None = None
        self.key_sum = 0

    def add(self, part: pa.Table | pa.RecordBatch) -> None:
        if self.since is not None:
            part = part.filter(
                pc.greater_equal(part.column("last_updated"), pa.scalar(self.since, TIMESTAMP))
            )
        if part.num_rows == 0:
            return
        newest = pc.max(part.column("last_updated")).as_py()
        self.newest = newest if self.newest is None else max(self.newest, newest)
        self.rows += part.num_rows
        self.key_sum += int(pc.sum(part.column("pk")).as_py())

    def fingerprint(self) -> Fingerprint:
        return Fingerprint(self.rows, self.newest, self.key_sum)


def tail_fingerprint(state: pa.Table, since: datetime | None) -> Fingerprint:
    count = TailCount(since)
    count.add(state)
    return count.fingerprint()

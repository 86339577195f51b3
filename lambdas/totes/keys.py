"""Set operations on primary-key columns, by sorting instead of hashing (pure, no I/O).

Shared by the extract, whose state is kept in key order, and the transform. Arrow's hash kernels
size their tables by the number of distinct values: ``count_distinct`` of 1.6 million
transaction ids took 432 MB of Arrow memory, and ``is_in`` against that many ids builds the
same table again for every fact slice checked. Keys here cost 8 bytes each: the source's keys
are integers, batches land in key order and the transform's state is kept sorted by key
(:func:`totes.transform.rules.upsert`), so a check is a pass over sorted numbers. For the same
reason two key-ordered streams of rows merge a piece at a time (:func:`merged_by_key`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Keys: TypeAlias = pa.Array | pa.ChunkedArray


def _values(keys: Keys) -> np.ndarray:
    return np.asarray(pc.drop_null(keys).to_numpy(zero_copy_only=False))


def _strictly_ascending(values: np.ndarray) -> bool:
    return len(values) < 2 or bool(np.all(values[1:] > values[:-1]))


def ascending(keys: Keys) -> bool:
    """Whether ``keys`` hold no null and strictly increase, chunk by chunk, copying nothing."""
    order = AscendingKeys()
    chunks = keys.chunks if isinstance(keys, pa.ChunkedArray) else [keys]
    return keys.null_count == 0 and all(order.follow(chunk) for chunk in chunks)


def repeats_a_key(keys: Keys) -> bool:
    """Whether a non-null value appears more than once (nulls are the rules' concern)."""
    values = _values(keys)
    if _strictly_ascending(values):
        return False  # the usual case, landed in key order: no sorted copy
    ordered = np.sort(values)
    return bool(np.any(ordered[1:] == ordered[:-1]))


class AscendingKeys:
    """Follows one key column a slice at a time. While the keys come strictly ascending (nulls
    aside), no key can repeat, and nothing but the last key needs keeping to know it; the
    extract lands every table in key order, so a whole table is usually checked this way."""

    def __init__(self) -> None:
        self.last: int | None = None
        self.holds = True

    def follow(self, keys: Keys) -> bool:
        """Take the next slice's keys; whether every key so far has been strictly ascending."""
        if not self.holds:
            return False
        values = _values(keys)
        if len(values) == 0:
            return True
        first = int(values[0])
        self.holds = _strictly_ascending(values) and (self.last is None or first > self.last)
        self.last = int(values[-1])
        return self.holds


def is_known(ids: Keys, known: Keys) -> pa.Array:
    """Per ``ids`` value, whether it is among ``known``; false for a null id, as ``pc.is_in``
    answers when ``known`` holds no null. ``known`` is sorted when it comes from the state;
    otherwise a sorted copy is made."""
    ids_array = pa.concat_arrays(ids.chunks) if isinstance(ids, pa.ChunkedArray) else ids
    known_values = _values(known)
    if not _strictly_ascending(known_values):
        known_values = np.unique(known_values)
    if len(known_values) == 0 or len(ids_array) == 0:
        return pa.array(np.zeros(len(ids_array), dtype=bool))
    filled = np.asarray(ids_array.fill_null(known_values[0].item()).to_numpy(zero_copy_only=False))
    at = np.minimum(np.searchsorted(known_values, filled), len(known_values) - 1)
    found = known_values[at] == filled
    if ids_array.null_count:
        found &= np.asarray(pc.is_valid(ids_array).to_numpy(zero_copy_only=False))
    return pa.array(found)


class KeySet:
    """Distinct integer keys held as runs of consecutive values, 16 bytes a run.

    The transform checks every fact's references against the keys of the state tables. Source
    keys come from sequences, so the 1.6 million transaction ids of scale 100 are a handful of
    runs (a run breaks only where a row was deleted or a sequence value was skipped): holding
    them as runs rather than as the state's key column takes the largest thing the transform
    held in memory out of it (docs/performance.md)."""

    __slots__ = ("_ends", "_starts")

    def __init__(self, starts: np.ndarray, ends: np.ndarray) -> None:
        self._starts = starts  # ascending; runs are disjoint and not adjacent
        self._ends = ends  # inclusive

    @classmethod
    def of(cls, keys: Keys) -> KeySet:
        """The set of the non-null values of ``keys``, in any order."""
        values = _values(keys).astype(np.int64, copy=False)
        if not _strictly_ascending(values):
            values = np.unique(values)
        if len(values) == 0:
            return cls(np.empty(0, np.int64), np.empty(0, np.int64))
        breaks = np.flatnonzero(np.diff(values) != 1)
        starts = values[np.concatenate(([0], breaks + 1))]
        ends = values[np.concatenate((breaks, [len(values) - 1]))]
        return cls(starts, ends)

    @classmethod
    def union(cls, *sets: KeySet | None) -> KeySet:
        """Every key of any of ``sets`` (None is the empty set)."""
        given = [s for s in sets if s is not None]
        starts = np.concatenate([np.empty(0, np.int64), *(s._starts for s in given)])
        ends = np.concatenate([np.empty(0, np.int64), *(s._ends for s in given)])
        if len(given) == 1 or len(starts) == 0:
            return cls(starts, ends)
        order = np.argsort(starts, kind="stable")
        starts, reach = starts[order], np.maximum.accumulate(ends[order])
        # A run begins wherever a start lies beyond everything before it reaches, plus one.
        firsts = np.flatnonzero(np.concatenate(([True], starts[1:] > reach[:-1] + 1)))
        lasts = np.concatenate((firsts[1:] - 1, [len(starts) - 1])).astype(np.intp)
        return cls(starts[firsts], reach[lasts])

    @property
    def runs(self) -> int:
        return len(self._starts)

    def __len__(self) -> int:
        return int(np.sum(self._ends - self._starts + 1))

    def contains(self, ids: Keys) -> pa.Array:
        """Per ``ids`` value, whether it is in the set; false for a null id."""
        ids_array = pa.concat_arrays(ids.chunks) if isinstance(ids, pa.ChunkedArray) else ids
        if len(self._starts) == 0 or len(ids_array) == 0:
            return pa.array(np.zeros(len(ids_array), dtype=bool))
        filled = np.asarray(ids_array.fill_null(0).to_numpy(zero_copy_only=False))
        at = np.searchsorted(self._starts, filled, side="right") - 1
        found = (at >= 0) & (filled <= self._ends[np.maximum(at, 0)])
        if ids_array.null_count:
            found &= np.asarray(pc.is_valid(ids_array).to_numpy(zero_copy_only=False))
        return pa.array(found)


def merged_by_key(old: Iterable[pa.Table], new: Iterable[pa.Table], key: str) -> Iterator[pa.Table]:
    """Two streams of tables of one schema, each in strictly ascending ``key`` order, as one
    stream in key order in which a row of ``new`` replaces the row of ``old`` with its key.

    It holds a piece of each stream at a time: each step gives out every row up to the smaller
    of the two pieces' last keys, which finishes one of the two pieces."""
    old_rows, new_rows = _pieces(old), _pieces(new)
    old_piece, new_piece = next(old_rows, None), next(new_rows, None)
    while old_piece is not None and new_piece is not None:
        old_keys = old_piece.column(key).to_numpy()
        new_keys = new_piece.column(key).to_numpy()
        bound = min(old_keys[-1], new_keys[-1])
        old_upto = int(np.searchsorted(old_keys, bound, side="right"))
        new_upto = int(np.searchsorted(new_keys, bound, side="right"))
        older, newer = old_piece.slice(0, old_upto), new_piece.slice(0, new_upto)
        if newer.num_rows == 0:
            yield older
        else:
            replaced = is_known(older.column(key), newer.column(key))
            yield pa.concat_tables([older.filter(pc.invert(replaced)), newer]).sort_by(key)
        old_piece = old_piece.slice(old_upto) if old_upto < old_piece.num_rows else None
        new_piece = new_piece.slice(new_upto) if new_upto < new_piece.num_rows else None
        old_piece = old_piece if old_piece is not None else next(old_rows, None)
        new_piece = new_piece if new_piece is not None else next(new_rows, None)
    for piece, rest in ((old_piece, old_rows), (new_piece, new_rows)):
        if piece is not None:
            yield piece
            yield from rest


def _pieces(tables: Iterable[pa.Table]) -> Iterator[pa.Table]:
    return (table for table in tables if table.num_rows)

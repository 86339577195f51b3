"""Set operations on primary-key columns, by sorting instead of hashing (pure, no I/O).

Shared by the extract, whose state is kept in key order, and the transform. Arrow's hash kernels
size their tables by the number of distinct values: ``count_distinct`` of 1.6 million
transaction ids took 432 MB of Arrow memory, and ``is_in`` against that many ids builds the
same table again for every fact slice checked. Keys here cost 8 bytes each: the source's keys
are integers, batches land in key order and the transform's state is kept sorted by key
(:func:`totes.transform.rules.upsert`), so a check is a pass over sorted numbers.
"""

from __future__ import annotations

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

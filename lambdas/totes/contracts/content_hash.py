"""The content hash of a landed row: one 64-bit number per row, computed over Arrow columns.

The extract compares it with the last captured version of the same key to tell a silent edit
(a change that left ``last_updated`` alone) from an unchanged row, so it must give a version the
same value forever and change when any known column does. It is computed here, over the parsed
Arrow data, with whole-array numpy operations: PostgreSQL's ``md5(ROW(...)::text)``, the first
definition, tripled the cost of reading the source (docs/performance.md).

Definition (``SCHEME``; a test pins it to known values, so any change to it is deliberate):

* Each value becomes one 64-bit word. Integers and timestamps (milliseconds) are their int64
  value; booleans 0 or 1; ``decimal128`` its two 64-bit halves mixed together; a string is the
  sum, modulo 2**64, of ``mix(position << 8 | byte)`` over its UTF-8 bytes, mixed with its
  length. A NULL is a fixed word, apart from every value's because each value's word is mixed
  with the column's number first.
* A row's hash folds its words in column order: ``h = mix(h + word * ODD)``.
* It is written as 16 lowercase hexadecimal digits (the landed ``_content_hash`` is text; the
  md5 hashes of batches landed before were 32 digits, so the two can never be equal).

``mix`` is MurmurHash3's 64-bit finaliser. The hash guards against accidents, not adversaries:
a change slips through only if its row lands on the same 64-bit value, about 1 in 1.8e19.

Pure: pyarrow and numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

SCHEME = "fmix64-v1"
LEGACY_SCHEME = "md5-text"  # what a manifest without a ``content_hash`` field used

_U64 = np.uint64
_C1 = _U64(0xFF51AFD7ED558CCD)
_C2 = _U64(0xC4CEB9FE1A85EC53)
_ODD = _U64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio, odd
_SEED = _U64(0x243F6A8885A308D3)  # digits of pi: any fixed value would do
_NULL = _U64(0x13198A2E03707344)
_S33 = _U64(33)
# Each byte's two hex digits as one little-endian 16-bit word: a row's 16 digits are one lookup
# per byte of its big-endian hash, a quarter of the work of a lookup per nibble.
_DIGITS = b"0123456789abcdef"
_BYTE_DIGITS = np.array([_DIGITS[b >> 4] | _DIGITS[b & 0xF] << 8 for b in range(256)], dtype="<u2")


def _mix(x: np.ndarray) -> np.ndarray:
    """MurmurHash3 fmix64 on a uint64 array, in place (array arithmetic wraps modulo 2**64)."""
    shifted = x >> _S33  # the one temporary, reused: the hash's inputs can be a word per byte
    x ^= shifted
    x *= _C1
    np.right_shift(x, _S33, out=shifted)
    x ^= shifted
    x *= _C2
    np.right_shift(x, _S33, out=shifted)
    x ^= shifted
    return x


def _fixed_words(
    array: pa.Array, dtype: np.dtype[Any] | type[np.generic], per_value: int
) -> np.ndarray:
    """The values of a fixed-width array as unsigned words, ``per_value`` words per value."""
    data = array.buffers()[1]
    assert data is not None
    words = np.frombuffer(data, dtype=dtype, count=(array.offset + len(array)) * per_value)
    return words[array.offset * per_value :].astype(np.uint64)


def _bits(bitmap: pa.Buffer | None, array: pa.Array) -> np.ndarray:
    """An Arrow bitmap (validity or boolean values) of ``array`` as a numpy bool array.

    Unpacked here rather than by ``to_numpy``, which converts booleans through pandas and so
    imports it: a third of a second and tens of megabytes in a process that needs no pandas."""
    assert bitmap is not None
    bits = np.frombuffer(bitmap, dtype=np.uint8)
    unpacked = np.unpackbits(bits, count=array.offset + len(array), bitorder="little")
    return unpacked[array.offset :].view(np.bool_)


def _string_words(array: pa.Array) -> np.ndarray:
    offsets_type = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets_buffer, data = array.buffers()[1], array.buffers()[2]
    assert offsets_buffer is not None
    offsets = np.frombuffer(offsets_buffer, dtype=offsets_type, count=array.offset + len(array) + 1)
    offsets = offsets[array.offset :].astype(np.int64)
    first, last = int(offsets[0]), int(offsets[-1])
    lengths = np.diff(offsets)
    if last > first and data is not None:
        chunk = np.frombuffer(data, dtype=np.uint8, count=last)[first:]
        starts = offsets[:-1] - first
        # One word per byte, built in place in ``running[1:]`` (a string's bytes are most of
        # the rows' bytes, so every temporary here costs a copy of the data).
        running = np.empty(last - first + 1, dtype=np.uint64)
        running[0] = 0
        per_byte = running[1:]
        per_byte.fill(1)
        # Each byte's position within its string, as a running sum of ones that each string's
        # first byte resets to 0 (wrapping arithmetic: it adds 1 - the previous length).
        began = starts[lengths > 0]
        per_byte[began[1:]] = _U64(1) - lengths[lengths > 0][:-1].astype(np.uint64)
        per_byte[0] = 0
        np.cumsum(per_byte, out=per_byte)
        per_byte <<= _U64(8)
        per_byte |= chunk
        _mix(per_byte)
        # Per-row sums from one running sum: sum(row) = total(end) - total(start).
        np.cumsum(running, out=running)
        sums = running[offsets[1:] - first] - running[starts]
    else:
        sums = np.zeros(len(array), dtype=np.uint64)
    return _mix(sums ^ (lengths.astype(np.uint64) * _ODD))


def _value_words(array: pa.Array) -> np.ndarray:
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _string_words(array)
    if pa.types.is_boolean(kind):
        # A NULL's word is replaced below, so whatever bit it holds does not matter.
        return _bits(array.buffers()[1], array).astype(np.uint64)
    if pa.types.is_decimal128(kind):
        halves = _fixed_words(array, np.uint64, 2).reshape(-1, 2)
        return _mix(halves[:, 0] ^ _mix(halves[:, 1] + _ODD))
    if pa.types.is_integer(kind) or pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return _fixed_words(array, np.dtype(f"<i{kind.bit_width // 8}"), 1)
    raise TypeError(f"no content hash is defined for Arrow type {kind}")


def _column_words(array: pa.Array, number: int) -> np.ndarray:
    # The column's number, folded in before mixing, sets each column's words (a NULL's apart).
    words = _mix(_value_words(array) + _U64(((number + 1) * int(_ODD)) % 2**64))
    if array.null_count:
        words[~_bits(array.buffers()[0], array)] = _NULL
    return words


def row_hashes(batch: pa.RecordBatch | pa.Table, columns: Sequence[str]) -> pa.StringArray:
    """The content hash of every row of ``batch`` over ``columns``, in that order."""
    n = batch.num_rows
    state = np.full(n, _SEED, dtype=np.uint64)
    for number, name in enumerate(columns):
        column = batch.column(name)
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        state += _column_words(array, number) * _ODD
        state = _mix(state)
    return _hex(state)


def _hex(values: np.ndarray) -> pa.StringArray:
    """uint64 values as 16 lowercase hex digits each, built as one buffer."""
    n = len(values)
    digits = _BYTE_DIGITS[values.astype(">u8").view(np.uint8)]
    offsets = np.arange(0, 16 * (n + 1), 16, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(digits))

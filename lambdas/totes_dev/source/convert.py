"""Turn loosely typed snapshot columns into the exact types of ``totes.tables``.

Real snapshots went through floats, ``varchar`` and pandas: ids arrive as ``'2.0'`` or float NaN,
money as float or unscaled numeric text, NULL as the string ``'NULL'`` in ``address``. Every
column is converted with whole-array pyarrow/numpy operations; a value that cannot be converted
stops the load with a :class:`SnapshotLoadError` naming the file, table, row and column, because a
silently "repaired" row would be data loss that nobody notices. Pure logic: no database here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from totes.tables import MONEY, TIMESTAMP, Column, SourceTable
from totes_dev.errors import SnapshotLoadError

# Describes row ``i`` (0-based within the file or block) for messages, e.g. "row 5 (line 812)".
RowLocator = Callable[[int], str]

# Tables whose exporter wrote NULL as the literal string 'NULL' (only address, see the snapshots'
# README); anywhere else 'NULL' is a legitimate value and is kept.
STRING_NULL_TABLES = frozenset({"address"})

_INT_TEXT = r"^\s*[+-]?\d{1,18}(\.0*)?\s*$"
_MONEY_TEXT = r"^\s*[+-]?\d{1,8}(\.\d{1,10})?\s*$"
_MAX_CENTS = 10**10  # numeric(10,2)
_TRUE = pa.array(["t", "true", "1", "y", "yes", "on"])
_FALSE = pa.array(["f", "false", "0", "n", "no", "off"])


def _plain(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_large_string(values.type) or pa.types.is_string_view(values.type):
        values = values.cast(pa.string())
    return values


def _mask(values: pa.Array) -> np.ndarray:
    """A pyarrow boolean array as numpy, null counting as False."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def money_from_cents(cents: np.ndarray, valid: np.ndarray) -> pa.Array:
    """decimal128(10,2) straight from integer cents (null where not ``valid``): exact, and no
    float or Python Decimal per row."""
    words = np.zeros((len(cents), 2), dtype=np.int64)
    words[:, 0] = np.where(valid, cents, 0)
    words[:, 1] = words[:, 0] >> 63  # sign extension into the high 64 bits
    money = pa.Array.from_buffers(MONEY, len(cents), [None, pa.py_buffer(words)])
    return pc.if_else(pa.array(valid), money, pa.nulls(len(cents), MONEY))


def _to_int(values: pa.Array) -> tuple[pa.Array, np.ndarray, str]:
    kind = values.type
    if pa.types.is_integer(kind):
        return values.cast(pa.int64()), np.zeros(len(values), bool), ""
    if pa.types.is_floating(kind):
        floats = values.to_numpy(zero_copy_only=False).astype(np.float64)
        present = ~np.isnan(floats)  # NaN is how pandas wrote NULL
        with np.errstate(invalid="ignore"):
            whole = present & np.isfinite(floats) & (np.floor(floats) == floats)
            whole &= np.abs(floats) < 2**53
        ints = np.where(whole, floats, 0).astype(np.int64)
        return pa.array(ints, mask=~whole), present & ~whole, "is not a whole number"
    if pa.types.is_string(kind):
        ok = pc.match_substring_regex(values, _INT_TEXT)
        digits = pc.replace_substring_regex(pc.utf8_trim_whitespace(values), r"\.0*$", "")
        ints = pc.if_else(ok, digits, pa.nulls(len(values), pa.string())).cast(pa.int64())
        return ints, _mask(pc.invert(ok)), "is not a whole number"
    raise TypeError(kind)


def _to_money(values: pa.Array) -> tuple[pa.Array, np.ndarray, str]:
    kind = values.type
    reason = "is not an amount that fits numeric(10,2)"
    if pa.types.is_floating(kind) or pa.types.is_integer(kind):
        floats = values.to_numpy(zero_copy_only=False).astype(np.float64)
        present = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), bool)
        with np.errstate(invalid="ignore", over="ignore"):
            cents_f = np.rint(floats * 100)  # nearest cent: "Decimal rounded to 2 dp"
            fits = present & np.isfinite(cents_f) & (np.abs(cents_f) < _MAX_CENTS)
        cents = np.where(fits, cents_f, 0).astype(np.int64)
        return money_from_cents(cents, fits), present & ~fits, reason
    if pa.types.is_decimal(kind) or pa.types.is_string(kind):
        if pa.types.is_string(kind):
            ok = pc.match_substring_regex(values, _MONEY_TEXT)
            text = pc.if_else(ok, pc.utf8_trim_whitespace(values), pa.nulls(len(values)))
            exact = text.cast(pa.decimal128(20, 10))
            bad = _mask(pc.invert(ok))
        else:
            exact, bad = values, np.zeros(len(values), bool)
        # half away from zero, as PostgreSQL rounds numeric
        rounded = pc.round(exact, 2, round_mode="half_towards_infinity")
        return rounded.cast(MONEY), bad, reason
    raise TypeError(kind)


def _to_timestamp(values: pa.Array) -> tuple[pa.Array, np.ndarray, str]:
    kind = values.type
    if pa.types.is_string(kind):
        values = values.cast(pa.timestamp("ns"))
    elif not pa.types.is_timestamp(kind) or kind.tz is not None:
        raise TypeError(kind)
    nanos = pc.fill_null(values.cast(pa.timestamp("ns")).cast(pa.int64()), 0).to_numpy()
    sub_ms = nanos % 1_000_000 != 0
    kept = pc.if_else(pa.array(~sub_ms), values, pa.nulls(len(values), values.type))
    return kept.cast(TIMESTAMP), sub_ms, "is not a whole number of milliseconds"


def _to_bool(values: pa.Array) -> tuple[pa.Array, np.ndarray, str]:
    kind = values.type
    if pa.types.is_boolean(kind):
        return values, np.zeros(len(values), bool), ""
    if pa.types.is_string(kind):
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(values))
        is_true, is_false = pc.is_in(lowered, _TRUE), pc.is_in(lowered, _FALSE)
        known = pc.or_(is_true, is_false)
        out = pc.if_else(known, is_true, pa.nulls(len(values), pa.bool_()))
        return out, _mask(pc.and_(values.is_valid(), pc.invert(known))), "is not a boolean"
    raise TypeError(kind)


def _to_text(values: pa.Array, *, string_nulls: bool) -> tuple[pa.Array, np.ndarray, str]:
    if not pa.types.is_string(values.type):
        raise TypeError(values.type)
    if string_nulls:
        values = pc.if_else(pc.equal(values, "NULL"), pa.nulls(len(values), pa.string()), values)
    return values, np.zeros(len(values), bool), ""


def _convert(values: pa.Array, column: Column, table: str) -> tuple[pa.Array, np.ndarray, str]:
    target = column.arrow_type
    if pa.types.is_int64(target):
        return _to_int(values)
    if target == MONEY:
        return _to_money(values)
    if target == TIMESTAMP:
        return _to_timestamp(values)
    if pa.types.is_boolean(target):
        return _to_bool(values)
    return _to_text(values, string_nulls=table in STRING_NULL_TABLES and column.nullable)


def _scan_for_bad_row(values: pa.Array, column: Column, table: str) -> int:
    """Error path only: the first row whose value alone fails the whole-array conversion."""
    for i in range(len(values)):
        try:
            _convert(values.slice(i, 1), column, table)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
            return i
    return 0


def strict_table(
    raw: pa.Table, spec: SourceTable, *, origin: str, locate: RowLocator, first_row: int = 0
) -> pa.Table:
    """``raw`` converted to ``spec.arrow_schema`` by column name, or a SnapshotLoadError.

    ``first_row`` is the index of ``raw``'s first row in its file, so messages point at the file.
    """
    names = set(raw.column_names)
    unknown = sorted(names - set(spec.column_names))
    missing = [name for name in spec.column_names if name not in names]
    if unknown or missing:
        raise SnapshotLoadError(
            f"{origin}: columns do not match the table (missing {missing}, unknown {unknown})",
            table=spec.name,
        )
    key_values = _plain(raw.column(spec.primary_key))
    arrays = []
    for column in spec.columns:
        values = _plain(raw.column(column.name))
        try:
            converted, bad, reason = _convert(values, column, spec.name)
        except TypeError:
            raise SnapshotLoadError(
                f"{origin}: column {column.name} has type {values.type}, which cannot become "
                f"{column.arrow_type}",
                table=spec.name,
            ) from None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
            index = _scan_for_bad_row(values, column, spec.name)
            bad, reason = np.zeros(len(values), bool), f"cannot be read as {column.arrow_type}"
            bad[index] = True
            converted = pa.nulls(len(values), column.arrow_type)
        if not column.nullable:
            missing_value = np.asarray(converted.is_null().to_numpy(zero_copy_only=False), bool)
            if missing_value.any() and not bad.any():
                bad, reason = missing_value, "is NULL but the column is NOT NULL"
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise SnapshotLoadError(
                f"{origin}: {locate(first_row + index)}, column {column.name}: "
                f"{values[index].as_py()!r} {reason}",
                table=spec.name,
                key=key_values[index].as_py(),
            )
        arrays.append(converted)
    return pa.Table.from_arrays(arrays, schema=spec.arrow_schema)

"""Bad rows: why each one is bad, and the quarantine record that keeps its original values.

Reasons are computed as whole-column masks; a row collects every rule it breaks, joined by
"; ", so a fix addresses all of them at once. ``row_json`` keeps every landed column (including
``_op`` and ``_content_hash``) as text, because text is the one form that loses nothing for every
landing type (decimal, millisecond timestamp, nullable int) and casts back exactly on replay.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

from totes.contracts.processed import QUARANTINE_SCHEMA

# Position of a row in its landed file, added by the transformer: not an original value.
CAPTURE_SEQ = "_capture_seq"


class Reasons:
    """The reasons collected for each row of one table; NULL means the row is good."""

    def __init__(self, rows: int) -> None:
        self.values: pa.Array | pa.ChunkedArray = pa.nulls(rows, pa.string())
        self.any_bad = False

    def add(self, bad: pa.Array | pa.ChunkedArray, reason: str) -> None:
        bad = pc.fill_null(bad, False)
        if not pc.any(bad).as_py():
            return  # the common case: a clean column costs one pass, not a string rebuild
        self.any_bad = True
        joined = pc.binary_join_element_wise(self.values, reason, "; ")
        self.values = pc.if_else(bad, pc.coalesce(joined, reason), self.values)

    @property
    def bad(self) -> pa.Array | pa.ChunkedArray:
        return pc.is_valid(self.values)

    @property
    def good(self) -> pa.Array | pa.ChunkedArray:
        return pc.is_null(self.values)


def row_json(rows: pa.Table) -> pa.Array:
    """One JSON object per row, every value as text (NULL as JSON null)."""
    if rows.num_rows == 0:
        return pa.array([], pa.string())
    as_text = pa.table(
        {
            name: pc.cast(rows.column(name), pa.string())
            for name in rows.column_names
            if name != CAPTURE_SEQ
        }
    )
    # Bad rows are few: one json.dumps each is simpler than any columnar JSON writer.
    return pa.array(
        [json.dumps(row, ensure_ascii=False) for row in as_text.to_pylist()], pa.string()
    )


def quarantine_records(table: str, rows: pa.Table, reasons: Reasons, key_column: str) -> pa.Table:
    """The quarantine rows (table, key, reason, row_json) of the rows with a reason."""
    bad = reasons.bad
    picked = rows.filter(bad)
    return pa.table(
        [
            pa.repeat(pa.scalar(table, pa.string()), picked.num_rows),
            pc.cast(picked.column(key_column), pa.int64()),
            pc.filter(reasons.values, bad),
            row_json(picked),
        ],
        schema=QUARANTINE_SCHEMA,
    )


def original_rows(records: pa.Table) -> list[dict[str, str | None]]:
    """The landed values of quarantined rows, as text, for replay or inspection."""
    return [json.loads(text) for text in records.column("row_json").to_pylist()]

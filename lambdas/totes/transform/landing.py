"""Rows in the ingestion lake's exact form, and ingestion batches written by the contract.

The extract is the normal writer of ingestion batches. This module writes one when rows must
re-enter the pipeline by the front door: a replay of quarantined rows (see
:mod:`totes.transform.replay`), and tests or benchmarks that land known data without a database.
Such a batch carries the extract's watermarks and state keys forward unchanged, so the next
extract continues exactly where it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from totes.batches import batch_time, dated_key, new_batch_id
from totes.commits import commit, newest
from totes.lake import Lake, parquet_bytes
from totes.tables import LOAD_ORDER, source_table

OPS = ("upsert", "delete")


def to_landing_types(table: str, rows: pa.Table) -> pa.Table:
    """Cast the known columns of ``rows`` to the exact landing types, keeping extra columns.

    Accepts the lossy forms found in the wild: float money (rounded to 2 dp, as every real value
    has exactly two), float ids with NaN for NULL, nanosecond timestamps, and text (the form
    quarantined rows are kept in).
    """
    out = rows
    for column in source_table(table).columns:
        values = rows.column(column.name)
        if pa.types.is_floating(values.type):
            values = pc.if_else(pc.is_nan(values), pa.scalar(None, values.type), values)
            if pa.types.is_decimal(column.arrow_type):
                values = pc.round(values, 2)
        if pa.types.is_string(values.type) and pa.types.is_boolean(column.arrow_type):
            values = pc.equal(pc.utf8_lower(values), "true")
        index = out.schema.get_field_index(column.name)
        out = out.set_column(index, column.name, pc.cast(values, column.arrow_type))
    return out


def with_landing_columns(table: str, rows: pa.Table, op: str = "upsert") -> pa.Table:
    """Add ``_content_hash`` (a stable hash of the known columns) and ``_op`` when missing."""
    if "_content_hash" not in rows.column_names:
        known = rows.select(source_table(table).column_names).to_pandas()
        hashes = pd.util.hash_pandas_object(known, index=False).to_numpy()
        rows = rows.append_column("_content_hash", pc.cast(pa.array(hashes), pa.string()))
    if "_op" not in rows.column_names:
        rows = rows.append_column("_op", pa.repeat(pa.scalar(op, pa.string()), rows.num_rows))
    return rows


def write_ingestion_batch(
    lake: Lake,
    tables: Mapping[str, pa.Table],
    *,
    run_id: str,
    now: datetime | None = None,
    full_scan: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Commit ``tables`` (landing types, with ``_content_hash`` and ``_op``) as the next ingestion
    batch; returns its manifest key. Tables not given carry their previous entry forward."""
    now = now or datetime.now(UTC)
    latest = newest(lake)
    previous = latest.document if latest else None
    if previous:
        # Batch ids order batches; a clock that has not moved on must not reorder them.
        now = max(now, batch_time(previous["batch_id"]) + timedelta(milliseconds=1))
    batch_id = new_batch_id(now)
    entries: dict[str, Any] = {}
    for name in LOAD_ORDER:
        spec = source_table(name)
        before = previous["tables"][name] if previous else {}
        rows = tables.get(name)
        entry = {
            "key": None,
            "rows": 0,
            "upserts": 0,
            "deletes": 0,
            "watermark": before.get("watermark"),
            "state_key": before.get("state_key"),
            "schema": [{"name": f.name, "type": str(f.type)} for f in spec.arrow_schema],
        }
        if rows is not None and rows.num_rows:
            rows = rows.sort_by(spec.primary_key)
            key = dated_key(name, batch_id)
            lake.put(key, parquet_bytes(rows))
            deletes = int(pc.sum(pc.equal(rows.column("_op"), "delete")).as_py() or 0)
            latest_change = pc.max(rows.column("last_updated")).as_py()
            watermark = entry["watermark"]
            newest_text = latest_change.isoformat(timespec="milliseconds")
            entry.update(
                key=key,
                rows=rows.num_rows,
                upserts=rows.num_rows - deletes,
                deletes=deletes,
                watermark=max(watermark, newest_text) if watermark else newest_text,
            )
        entries[name] = entry
    manifest = {
        "format": 1,
        "kind": "ingestion",
        "batch_id": batch_id,
        "sequence": (previous["sequence"] + 1) if previous else 1,
        "previous_batch_id": previous["batch_id"] if previous else None,
        "run_id": run_id,
        # The extract resumes from the latest window: a batch written here must not move it.
        "window_start": previous["window_start"] if previous else None,
        "window_end": previous["window_end"]
        if previous
        else now.isoformat(timespec="milliseconds"),
        "full_scan": full_scan,
        "last_full_scan_at": previous.get("last_full_scan_at") if previous else None,
        "committed_at": now.isoformat(timespec="milliseconds"),
        "tables": entries,
        **(extra or {}),
    }
    return commit(lake, manifest, kind="ingestion")

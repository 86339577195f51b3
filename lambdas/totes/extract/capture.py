"""Landing one table's rows: diff against the state, write the data object, then the state object.

This module sees Arrow record batches and a :class:`~totes.lake.Lake`; it imports no driver.
Objects written here stay invisible until the extractor commits the manifest.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from totes.contracts.ingestion import (
    DELETE,
    HASH_COLUMN,
    OP_COLUMN,
    UPSERT,
    TableEntry,
    Tail,
    data_key,
    landing_schema,
    schema_json,
    state_key,
)
from totes.errors import LakeError
from totes.extract.diff import (
    CAPTURED_SCHEMA,
    STATE_SCHEMA,
    NewState,
    StateIndex,
    merge_state,
    tail_fingerprint,
)
from totes.extract.window import lower_bound
from totes.lake import PARQUET_WRITE_OPTIONS, Lake, read_parquet
from totes.tables import TIMESTAMP, SourceTable

# Rows per row group of a state object (each slice of the captured rows gets its batch id then).
STATE_ROW_GROUP_ROWS = 1 << 17


@dataclass(frozen=True)
class Captured:
    entry: TableEntry
    bytes: int
    seconds: float


def write_state(state: NewState, path: Path) -> None:
    """The state object, written a slice at a time, so that the captured rows' batch id is never
    spelled out for the whole table at once."""
    with pq.ParquetWriter(path, STATE_SCHEMA, **PARQUET_WRITE_OPTIONS) as writer:
        for part in state.slices(STATE_ROW_GROUP_ROWS):
            writer.write_table(part)


def _with_op(batch: pa.RecordBatch, schema: pa.Schema, op: str) -> pa.RecordBatch:
    columns = [*batch.columns, pa.repeat(pa.scalar(op), batch.num_rows)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """An older object's rows in today's landing schema (drifted columns may come or go)."""
    columns = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def tombstones(lake: Lake, table: SourceTable, vanished: pa.Table, schema: pa.Schema) -> pa.Table:
    """Deletion markers carrying the last captured values, read from the batch that captured
    each vanished key (one read per batch, not per row)."""
    parts: list[pa.Table] = []
    for batch_id in pc.unique(vanished.column("batch_id")).to_pylist():
        keys = vanished.filter(pc.equal(vanished.column("batch_id"), batch_id)).column("pk")
        old = read_parquet(lake, data_key(table.name, batch_id))
        rows = old.filter(pc.is_in(old.column(table.primary_key), value_set=keys.combine_chunks()))
        rows = rows.drop_columns([OP_COLUMN]) if OP_COLUMN in rows.column_names else rows
        rows = rows.append_column(OP_COLUMN, pa.repeat(pa.scalar(DELETE), rows.num_rows))
        parts.append(_conform(rows, schema))
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts)


def rehashed(lake: Lake, table: SourceTable, state: pa.Table) -> pa.Table:
    """``state`` with every key's content hash recomputed under today's definition.

    A state written under an earlier hash definition would make every row look changed. Each
    state row points at the batch that landed its version, so the new hash is computed from
    those landed values (one read per batch): exactly what a fresh read of an unchanged row
    gives, because the landed rows are the parsed rows. Run once, when the committed manifest
    names an older definition."""
    from totes.contracts.content_hash import row_hashes

    pk = table.primary_key
    known = table.arrow_schema
    keys: list[pa.Array] = []
    hashes: list[pa.Array] = []
    for batch_id in pc.unique(state.column("batch_id")).to_pylist():
        wanted = state.filter(pc.equal(state.column("batch_id"), batch_id)).column("pk")
        landed = read_parquet(lake, data_key(table.name, batch_id))
        missing = [name for name in known.names if name not in landed.column_names]
        if missing:
            raise LakeError(
                f"re-hashing the state: batch {batch_id} lacks columns {', '.join(missing)}",
                table=table.name,
            )
        landed = landed.filter(
            pc.is_in(landed.column(pk), value_set=wanted.combine_chunks())
        ).select(known.names)
        landed = pa.Table.from_arrays(
            [landed.column(f.name).cast(f.type) for f in known], schema=known
        )
        keys.append(landed.column(pk).combine_chunks())
        hashes.append(row_hashes(landed, known.names))
    if not keys:
        return state
    found = pa.table({"pk": pa.concat_arrays(keys), "content_hash": pa.concat_arrays(hashes)})
    found = found.sort_by("pk")
    if found.num_rows != state.num_rows or not found.column("pk").equals(state.column("pk")):
        lost = np.setdiff1d(state.column("pk").to_numpy(), found.column("pk").to_numpy())
        raise LakeError(
            "re-hashing the state: the batches it points at do not hold every key",
            table=table.name,
            key=str(lost[0]) if len(lost) else None,
        )
    index = STATE_SCHEMA.get_field_index("content_hash")
    return state.set_column(index, STATE_SCHEMA.field("content_hash"), found.column(1))


def capture_table(
    batches: Iterable[pa.RecordBatch],
    *,
    lake: Lake,
    table: SourceTable,
    extras: Sequence[str],
    previous: TableEntry,
    batch_id: str,
    upper: datetime,
    full_scan: bool,
    overlap: timedelta,
    spool: Path,
    rehash: bool = False,
) -> Captured:
    """Land the rows of ``batches`` that the state does not hold yet.

    In a full scan the batches are the whole table: rows at or after ``upper`` only prove that a
    key is alive (the next incremental run captures them), and keys absent from the scan become
    tombstones. ``rehash`` (the committed state predates today's content hash) re-hashes the
    state first and writes it even when nothing lands. The objects are built as files in
    ``spool`` and written from there; the caller keeps them until its writes are done."""
    started = time.perf_counter()
    schema = landing_schema(table, extras)
    state = (
        read_parquet(lake, previous.state_key) if previous.state_key else STATE_SCHEMA.empty_table()
    )
    if rehash:
        state = rehashed(lake, table, state)
    index = StateIndex(state)
    upper_scalar = pa.scalar(upper, TIMESTAMP)
    pk = table.primary_key

    # The data object grows in a file, not in a BytesIO whose reallocations held up to twice the
    # object beside the blocks being read (40-50 MB of the extract's peak at scale 100), and is
    # written to the lake from that file, never read back whole (docs/performance.md).
    data_path = spool / f"{table.name}.parquet"
    writer: pq.ParquetWriter | None = None
    captured: list[pa.Table] = []
    seen: list[np.ndarray] = []
    upserts = 0
    try:
        for batch in batches:
            keys = batch.column(pk)
            if full_scan and len(index):
                # Only needed to find vanished keys, which an empty state cannot have.
                seen.append(keys.to_numpy(zero_copy_only=False))
            mask = index.changed(keys, batch.column(HASH_COLUMN))
            if full_scan:
                mask = pc.and_(mask, pc.less(batch.column("last_updated"), upper_scalar))
            # A first run keeps every row: then the batch itself is landed, without a filtered copy.
            landed = batch if mask.true_count == len(mask) else batch.filter(mask)
            if landed.num_rows == 0:
                continue
            if writer is None:
                writer = pq.ParquetWriter(data_path, schema, **PARQUET_WRITE_OPTIONS)
            writer.write_batch(_with_op(landed, schema, UPSERT))
            upserts += landed.num_rows
            captured.append(
                pa.Table.from_arrays(
                    [landed.column(pk), landed.column("last_updated"), landed.column(HASH_COLUMN)],
                    schema=CAPTURED_SCHEMA,
                )
            )
    finally:
        if writer is not None:
            writer.close()
    # The parsed blocks and filtered copies are freed; return their pages before the state is
    # serialised.
    pa.default_memory_pool().release_unused()

    deleted = schema.empty_table()
    if full_scan and len(index):
        all_seen = np.concatenate(seen) if seen else np.empty(0, dtype=np.int64)
        deleted = tombstones(lake, table, index.missing_from(np.sort(all_seen)), schema)
    del seen

    if upserts == 0 and deleted.num_rows == 0 and not rehash:
        # Nothing to land; refresh the fingerprint anyway (the overlap setting may have changed)
        # so that the next run can skip this table after a single query.
        since = lower_bound(previous.watermark, overlap)
        entry = TableEntry(
            watermark=previous.watermark,
            state_key=previous.state_key,
            schema=schema_json(schema),
            tail=Tail(since, tail_fingerprint(state, since)),
        )
        return Captured(entry, 0, time.perf_counter() - started)

    if deleted.num_rows:
        # Tombstones are known only after the whole scan; merge them in key order.
        landed_rows = pq.read_table(data_path) if upserts else schema.empty_table()
        data_path = spool / f"{table.name}.with-deletes.parquet"
        merged = pa.concat_tables([landed_rows.cast(schema), deleted]).sort_by(pk)
        pq.write_table(merged, data_path, **PARQUET_WRITE_OPTIONS)
        del landed_rows, merged
    key: str | None = None
    data_bytes = 0
    if upserts or deleted.num_rows:
        key = data_key(table.name, batch_id)
        lake.put(key, data_path)
        data_bytes = data_path.stat().st_size

    captured_state = pa.concat_tables(captured) if captured else CAPTURED_SCHEMA.empty_table()
    del captured
    new_state = merge_state(
        state, captured_state, deleted.column(pk).to_numpy(zero_copy_only=False), batch_id
    )
    del state, index
    new_state_key = state_key(table.name, batch_id)
    state_path = spool / f"{table.name}.state.parquet"
    write_state(new_state, state_path)
    lake.put(new_state_key, state_path)

    newest = pc.max(captured_state.column("last_updated")).as_py() if upserts else None
    watermark = max((w for w in (previous.watermark, newest) if w is not None), default=None)
    since = lower_bound(watermark, overlap)
    entry = TableEntry(
        key=key,
        rows=upserts + deleted.num_rows,
        upserts=upserts,
        deletes=deleted.num_rows,
        watermark=watermark,
        state_key=new_state_key,
        schema=schema_json(schema),
        tail=Tail(since, tail_fingerprint(new_state.keys_and_times(), since)),
    )
    return Captured(entry, data_bytes, time.perf_counter() - started)

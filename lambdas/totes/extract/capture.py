"""Landing one table's rows: diff against the state, write the data object, then the state object.

This module sees Arrow record batches and a :class:`~totes.lake.Lake`; it imports no driver.
Objects written here stay invisible until the extractor commits the manifest.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from totes.contracts.ingestion import (
    DELETE,
    OP_COLUMN,
    UPSERT,
    Fingerprint,
    TableEntry,
    Tail,
    data_key,
    landing_schema,
    schema_json,
    state_key,
)
from totes.errors import LakeError
from totes.extract.diff import (
    STATE_SCHEMA,
    RangeDiff,
    TailCount,
    aligned,
    diff_range,
)
from totes.extract.window import lower_bound
from totes.lake import PARQUET_WRITE_OPTIONS, Lake, read_parquet
from totes.spool import RowGroups, spooled
from totes.tables import SourceTable

# Rows per row group of a state object: also the most state rows a key range holds.
STATE_ROW_GROUP_ROWS = 1 << 17
# Landed rows are gathered to at least this many per row group: an incremental run's changed
# rows come a few per key range, and a row group each would bloat the object.
DATA_ROW_GROUP_ROWS = 1 << 15


@dataclass(frozen=True)
class Captured:
    entry: TableEntry
    bytes: int
    seconds: float


def state_pieces(path: Path | None) -> Iterator[pa.Table]:
    """A state object's rows in key order, at most a row group's worth at a time."""
    if path is None:
        return
    for batch in pq.ParquetFile(path).iter_batches(batch_size=STATE_ROW_GROUP_ROWS):
        yield pa.Table.from_batches([batch]).cast(STATE_SCHEMA)


class NewStateFile:
    """The state object after the batch, range by range.

    It is begun at the first range that changes anything: until then the new state is the old
    one row for row, so those rows are copied from the old object only then, and a table with
    nothing to land writes no state at all. ``begun`` starts it at once (a re-hashed state must
    be written even when nothing lands)."""

    def __init__(self, path: Path, previous: Path | None, *, begun: bool = False) -> None:
        self.out = RowGroups(path, STATE_SCHEMA, STATE_ROW_GROUP_ROWS)
        self.begun = begun
        self._previous = previous
        self._carried_to: int | None = None  # the last key of the ranges passed unchanged

    def add(self, part: RangeDiff) -> None:
        if not self.begun and part.unchanged:
            if part.state.num_rows:
                self._carried_to = int(part.state.column("pk")[-1].as_py())
            return
        if not self.begun:
            self.begun = True
            if self._carried_to is not None:
                self._copy_previous(self._carried_to)
        self.out.add(part.state)

    def _copy_previous(self, last_key: int) -> None:
        for piece in state_pieces(self._previous):
            keys = piece.column("pk").to_numpy()
            within = int(np.searchsorted(keys, last_key, side="right"))
            self.out.add(piece.slice(0, within))
            if within < piece.num_rows:
                return

    def close(self) -> None:
        self.out.close()


def _tail(path: Path | None, since: datetime | None) -> Fingerprint:
    """The tail fingerprint of a state object on local disk, read a row group at a time."""
    count = TailCount(since)
    if path is not None:
        for batch in pq.ParquetFile(path).iter_batches(columns=["pk", "last_updated"]):
            count.add(batch)
    return count.fingerprint()


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


def tombstones(
    lake: Lake, table: SourceTable, vanished: pa.Table, schema: pa.Schema, spool: Path
) -> pa.Table:
    """Deletion markers carrying the last captured values, in key order, read from the batch
    that captured each vanished key: one streamed read per batch, not per row, and never a
    whole object in memory."""
    parts: list[pa.Table] = []
    pk = table.primary_key
    for batch_id in pc.unique(vanished.column("batch_id")).to_pylist():
        keys = vanished.filter(pc.equal(vanished.column("batch_id"), batch_id)).column("pk")
        wanted = keys.combine_chunks()
        path = spooled(lake, data_key(table.name, batch_id), spool / f"{table.name}.landed.parquet")
        try:
            for landed in pq.ParquetFile(path).iter_batches():
                rows = pa.Table.from_batches([landed])
                rows = rows.filter(pc.is_in(rows.column(pk), value_set=wanted))
                if rows.num_rows == 0:
                    continue
                rows = rows.drop_columns([OP_COLUMN]) if OP_COLUMN in rows.column_names else rows
                rows = rows.append_column(OP_COLUMN, pa.repeat(pa.scalar(DELETE), rows.num_rows))
                parts.append(_conform(rows, schema))
        finally:
            path.unlink()
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts).sort_by(pk)


def _with_tombstones(upserts: Path | None, deleted: pa.Table, out: RowGroups, pk: str) -> None:
    """The landed upserts and the tombstones (both in key order) as one file in key order,
    merged a row group of the upserts at a time."""
    keys = deleted.column(pk).to_numpy()
    taken = 0
    batches = pq.ParquetFile(upserts).iter_batches() if upserts is not None else iter(())
    for batch in batches:
        last = batch.column(pk)[-1].as_py()
        upto = int(np.searchsorted(keys, last, side="right"))
        if upto == taken:
            out.add(batch)
            continue
        rows = pa.Table.from_batches([batch]).cast(out.schema)
        out.add(pa.concat_tables([rows, deleted.slice(taken, upto - taken)]).sort_by(pk))
        taken = upto
    out.add(deleted.slice(taken))
    out.close()


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
    """Land the rows of ``batches`` (in key order) that the state does not hold yet.

    In a full scan the batches are the whole table: rows at or after ``upper`` only prove that a
    key is alive (the next incremental run captures them), and keys absent from the scan become
    tombstones. ``rehash`` (the committed state predates today's content hash) re-hashes the
    state first and writes it even when nothing lands.

    The old state is streamed from a local copy beside the source rows, one key range at a time
    (:func:`totes.extract.diff.aligned`), and the data and new state objects are written as
    they go: what is held is one range, whatever the table's size. The objects are built as
    files in ``spool`` and written from there; the caller keeps them until its writes are done."""
    started = time.perf_counter()
    schema = landing_schema(table, extras)
    pk = table.primary_key
    old_state: Path | None = None
    if previous.state_key:
        old_state = spool / f"{table.name}.old-state.parquet"
        if rehash:
            # One-off, when the hash definition changed: this holds the table's state whole.
            state = rehashed(lake, table, read_parquet(lake, previous.state_key))
            pq.write_table(state, old_state, **PARQUET_WRITE_OPTIONS)
            del state
        else:
            spooled(lake, previous.state_key, old_state)

    upserts = RowGroups(spool / f"{table.name}.parquet", schema, DATA_ROW_GROUP_ROWS)
    new_state = NewStateFile(spool / f"{table.name}.state.parquet", old_state, begun=rehash)
    vanished: list[pa.Table] = []
    newest: datetime | None = None
    try:
        for old, rows in aligned(state_pieces(old_state), batches, pk, table=table.name):
            part = diff_range(old, rows, pk=pk, batch_id=batch_id, full_scan=full_scan, upper=upper)
            if part.landed is not None:
                upserts.add(_with_op(part.landed, schema, UPSERT))
                latest = pc.max(part.landed.column("last_updated")).as_py()
                newest = latest if newest is None else max(newest, latest)
            if part.vanished.num_rows:
                vanished.append(part.vanished.select(["pk", "batch_id"]))
            new_state.add(part)
    finally:
        upserts.close()
        new_state.close()

    deleted = schema.empty_table()
    if vanished:
        deleted = tombstones(lake, table, pa.concat_tables(vanished), schema, spool)

    if upserts.rows == 0 and deleted.num_rows == 0 and not rehash:
        # Nothing to land; refresh the fingerprint anyway (the overlap setting may have changed)
        # so that the next run can skip this table after a single query.
        since = lower_bound(previous.watermark, overlap)
        entry = TableEntry(
            watermark=previous.watermark,
            state_key=previous.state_key,
            schema=schema_json(schema),
            tail=Tail(since, _tail(old_state, since)),
        )
        return Captured(entry, 0, time.perf_counter() - started)

    data_path = upserts.path if upserts.rows else None
    if deleted.num_rows:
        # Tombstones are known only after the whole scan; merged into the upserts in key order.
        merged = RowGroups(
            spool / f"{table.name}.with-deletes.parquet", schema, DATA_ROW_GROUP_ROWS
        )
        _with_tombstones(data_path, deleted, merged, pk)
        data_path = merged.path
    key: str | None = None
    data_bytes = 0
    if data_path is not None:
        key = data_key(table.name, batch_id)
        lake.put(key, data_path)
        data_bytes = data_path.stat().st_size

    new_state_key = state_key(table.name, batch_id)
    if new_state.out.rows:
        lake.put(new_state_key, new_state.out.path)
    else:
        # Every key left the source: an empty state, still written so the entry names one.
        pq.write_table(STATE_SCHEMA.empty_table(), new_state.out.path, **PARQUET_WRITE_OPTIONS)
        lake.put(new_state_key, new_state.out.path)

    watermark = max((w for w in (previous.watermark, newest) if w is not None), default=None)
    since = lower_bound(watermark, overlap)
    entry = TableEntry(
        key=key,
        rows=upserts.rows + deleted.num_rows,
        upserts=upserts.rows,
        deletes=deleted.num_rows,
        watermark=watermark,
        state_key=new_state_key,
        schema=schema_json(schema),
        tail=Tail(since, _tail(new_state.out.path if new_state.out.rows else None, since)),
    )
    return Captured(entry, data_bytes, time.perf_counter() - started)

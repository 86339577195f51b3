"""Turn every committed ingestion batch not yet transformed into its processed batch.

The processed lake's newest manifest says where the transform stands; each pending ingestion
batch, oldest first, becomes one processed batch with the same batch id and sequence. The only
history read is the current-state objects that newest manifest names, so a run costs the
pending batches plus the current state, however old the lake is.

A crash leaves at most data objects that no manifest names. The next run recomputes the same
batch from the same inputs; an object already there with the same bytes is reused, one with
other bytes (the code changed in between) is written beside it under a new key, and the
manifest, written last, names what this run wrote.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from totes.commits import commit, committed_after, newest
from totes.contracts.ingestion import DELETE, HASH_COLUMN, OP_COLUMN, OPS, landing_schema
from totes.contracts.ingestion import KIND as INGESTION_KIND
from totes.contracts.processed import (
    FACT_METADATA_SCHEMA,
    QUARANTINE_SCHEMA,
    build_manifest,
    data_key,
    quarantine_key,
    state_key,
)
from totes.contracts.processed import KIND as PROCESSED_KIND
from totes.contracts.warehouse import DIM_DATE, TABLES
from totes.errors import CommitConflictError, LakeError, ObjectExistsError, TransformError
from totes.keys import AscendingKeys, repeats_a_key
from totes.lake import PARQUET_WRITE_OPTIONS, Lake, Payload, holds, parquet_bytes, read_parquet
from totes.observability import log
from totes.spool import on_local_disk
from totes.tables import LOAD_ORDER, source_table
from totes.transform.dates import DATE, calendar
from totes.transform.quarantine import CAPTURE_SEQ
from totes.transform.rules import (
    FACT_SOURCES,
    SLICED_DIMENSIONS,
    STATE_TABLES,
    WAREHOUSE_TABLES,
    Model,
    dimension_rows,
    fact_rows,
    model,
    referenced_dates,
    screen,
    state_schema,
    upsert,
)

# A round ends when another transform commits first; each round makes progress.
_MAX_ROUNDS = 5

# Rows screened, built and written at once for the facts and the one-table dimensions of
# growing tables (transaction). Every rule for such a row looks only at that row and the state,
# so slicing them bounds a batch's memory by this rather than by its largest table; it is also
# the processed objects' row group size, which bounds what the load decodes at once
# (docs/performance.md). 32 768 rather than 131 072: at the larger size a slice of the landed
# facts and of what is built from it outweighed the state at scale 100 (peak 319 against 286 MB,
# 3 % faster).
SLICE_ROWS = 32_768
SLICED_SOURCES = frozenset(FACT_SOURCES.values()) | frozenset(SLICED_DIMENSIONS.values())


def put_once(lake: Lake, key: str, data: Payload) -> str:
    """Write ``data`` at ``key`` or, after a crashed attempt left other bytes there, beside it."""
    candidate = key
    for attempt in range(1, 100):
        try:
            lake.put(candidate, data)
            return candidate
        except ObjectExistsError:
            if holds(lake, candidate, data):
                return candidate
        stem, dot, suffix = key.rpartition(".")
        candidate = f"{stem}.retry{attempt}{dot}{suffix}"
    raise LakeError(f"object {key} has too many leftover attempts")


def read_state(processed: Lake, manifest: Mapping[str, Any] | None) -> dict[str, pa.Table]:
    """The state a processed manifest names. Older batches kept whole rows of every state
    table; only the columns kept now are read."""
    if manifest is None:
        return {}
    return {
        table: read_parquet(processed, key).select(state_schema(table).names)
        for table, key in manifest["state"].items()
    }


def _entry(manifest: Mapping[str, Any], table: str) -> Mapping[str, Any]:
    entry = manifest["tables"].get(table)
    if entry is None:
        raise TransformError(
            "ingestion manifest lacks the table", table=table, key=manifest["batch_id"]
        )
    return cast(Mapping[str, Any], entry)


def _checked(rows: pa.Table, table: str, key: str | None, offset: int) -> pa.Table:
    """Landed rows with their position in the landed object, after the landing contract's own
    two columns are checked."""
    for column in (HASH_COLUMN, OP_COLUMN):
        if column not in rows.column_names:
            raise TransformError(f"landed rows lack {column}", table=table, key=key)
    if pc.any(pc.invert(pc.is_in(rows.column(OP_COLUMN), pa.array(OPS)))).as_py():
        raise TransformError(
            f"landed {OP_COLUMN} is not one of {', '.join(OPS)}", table=table, key=key
        )
    positions = np.arange(offset, offset + rows.num_rows, dtype=np.int64)
    return rows.append_column(CAPTURE_SEQ, pa.array(positions))


def _landed(ingestion: Lake, manifest: Mapping[str, Any]) -> dict[str, pa.Table]:
    """Every table the batch landed except those read a slice at a time
    (:func:`_landed_slices`)."""
    batch: dict[str, pa.Table] = {}
    for table in LOAD_ORDER:
        entry = _entry(manifest, table)
        if table in SLICED_SOURCES:
            continue
        if entry.get("key"):
            rows = read_parquet(ingestion, entry["key"])
        else:
            rows = landing_schema(source_table(table)).empty_table()
        batch[table] = _checked(rows, table, entry.get("key"), 0)
    return batch


def _landed_slices(
    ingestion: Lake, manifest: Mapping[str, Any], table: str, slice_rows: int, spool: Path
) -> Iterator[pa.Table]:
    """A landed table in slices of at most ``slice_rows`` rows, in landed order. The object is
    copied into ``spool`` and read from there: memory holds one decoded slice. A key twice in
    the table stops it: while the keys come in ascending order no key can repeat; once they do
    not, the whole key column is read and checked before the slice is given out."""
    key = _entry(manifest, table).get("key")
    if not key:
        return
    path = spool / f"landed-{table}.parquet"
    with path.open("wb") as sink:
        ingestion.get_into(key, sink)
    offset = 0
    # No pre-buffering: it reads every row group asked for, the whole object here, ahead of
    # decoding (36 MB beside 512 KB slices of sales_order at scale 100), which pays on high-latency
    # storage, not on a local file.
    landed = pq.ParquetFile(path, pre_buffer=False)
    primary_key = source_table(table).primary_key
    order, checked = AscendingKeys(), False
    try:
        for batch in landed.iter_batches(batch_size=slice_rows, use_threads=False):
            rows = pa.Table.from_batches([batch])
            # A missing key column is left for the rules, which name it.
            in_order = primary_key not in rows.column_names or order.follow(rows[primary_key])
            if not in_order and not checked:
                _check_keys(path, table, primary_key)
                checked = True
            yield _checked(rows, table, key, offset)
            offset += rows.num_rows
    finally:
        landed.close()
        path.unlink(missing_ok=True)  # a failed batch removes its spool before this runs


def _check_keys(path: Path, table: str, primary_key: str) -> None:
    with pq.ParquetFile(path, pre_buffer=False) as landed:
        keys = landed.read(columns=[primary_key], use_threads=False).column(0)
    if repeats_a_key(keys):
        raise TransformError("a primary key appears twice in one batch", table=table)


@dataclass(frozen=True)
class WrittenTable:
    """A warehouse table of one batch built a slice at a time, written: its object (None when no
    row was accepted), rows, the quarantine records of its source's bad rows, and the dates its
    rows reference."""

    key: str | None
    rows: int
    quarantine: pa.Table
    dates: list[date]


def _write_sliced(
    lake: Lake,
    name: str,
    slices: Iterable[pa.Table],
    build: Callable[[pa.Table], pa.Table],
    state: Mapping[str, pa.Table],
    batch_id: str,
    spool: Path,
) -> tuple[WrittenTable, pa.Table | None]:
    """Screen, build (``build``: accepted source rows to warehouse rows) and write ``name`` a
    slice at a time into one Parquet object (a row group per slice), built on disk in
    ``spool``: memory holds one slice, not the table. For a state table, the accepted rows'
    state columns come back beside it."""
    source = str(TABLES[name].source)
    path = spool / f"{name}.parquet"
    writer: pq.ParquetWriter | None = None
    written = 0
    quarantined: list[pa.Table] = []
    # Per state column, the accepted slices' chunks: copied into one chunk column by column at
    # the end, so that the state is never held twice over.
    kept: dict[str, list[pa.Array]] | None = None
    if source in STATE_TABLES:
        kept = {column: [] for column in state_schema(source).names}
    bounds: list[date] = []
    try:
        for rows in slices:
            screened = screen(source, rows, state)
            quarantined.append(screened.quarantine)
            if kept is not None:
                for column, chunks in kept.items():
                    chunks.extend(screened.accepted.column(column).chunks)
            built = build(screened.accepted)
            if built.num_rows == 0:
                continue
            if writer is None:
                writer = pq.ParquetWriter(path, built.schema, **PARQUET_WRITE_OPTIONS)
            writer.write_table(built)
            written += built.num_rows
            dates = pc.drop_null(referenced_dates({name: built}))
            if len(dates):
                low, high = pc.min_max(dates).values()
                bounds += [low.as_py(), high.as_py()]
    finally:
        if writer is not None:
            writer.close()
    key = put_once(lake, data_key(name, batch_id), path) if written else None
    path.unlink(missing_ok=True)  # the spool holds one table's objects at a time
    quarantine = pa.concat_tables(quarantined) if quarantined else QUARANTINE_SCHEMA.empty_table()
    accepted_state = None if kept is None else _compacted(kept, state_schema(source))
    return WrittenTable(key, written, quarantine, bounds), accepted_state


def _compacted(chunks: dict[str, list[pa.Array]], schema: pa.Schema) -> pa.Table:
    """A table of one chunk per column from ``chunks`` (emptied on the way): each column's
    chunks are released as soon as they are copied, so at most one column is held twice."""
    columns: list[pa.Array] = []
    for field in schema:
        parts = chunks.pop(field.name)
        columns.append(pa.concat_arrays(parts) if parts else pa.array([], field.type))
        del parts
    return pa.table(columns, schema=schema)


def _fact_rows(name: str, batch_id: str, sequence: int, accepted: pa.Table) -> pa.Table:
    return _with_metadata(fact_rows(name, accepted), accepted, batch_id, sequence)


def _with_metadata(facts: pa.Table, accepted: pa.Table, batch_id: str, sequence: int) -> pa.Table:
    n = facts.num_rows
    columns = [
        accepted.column(HASH_COLUMN),
        pa.repeat(pa.scalar(batch_id, pa.string()), n),
        pa.repeat(pa.scalar(sequence, pa.int64()), n),
        accepted.column(CAPTURE_SEQ),
        pc.equal(accepted.column(OP_COLUMN), DELETE),
    ]
    for field, values in zip(FACT_METADATA_SCHEMA, columns, strict=True):
        facts = facts.append_column(field, pc.cast(values, field.type))
    return facts


def _check_order(manifest: Mapping[str, Any], previous: Mapping[str, Any] | None) -> None:
    expected = previous["sequence"] + 1 if previous else 1
    if manifest.get("kind") != INGESTION_KIND or manifest.get("sequence") != expected:
        raise TransformError(
            f"ingestion batch has sequence {manifest.get('sequence')}, expected {expected}: "
            "a batch is missing or out of order",
            key=manifest.get("batch_id"),
        )
    if previous and manifest.get("previous_batch_id") not in (None, previous["batch_id"]):
        raise TransformError(
            f"ingestion batch follows {manifest.get('previous_batch_id')}, "
            f"but the last processed batch is {previous['batch_id']}",
            key=manifest.get("batch_id"),
        )


@dataclass(frozen=True)
class Batch:
    """One batch, built: the tables modelled at once, those written a slice at a time, and the
    state after it with the state tables it changed."""

    model: Model
    sliced: dict[str, WrittenTable]
    state: dict[str, pa.Table]
    changed_state: frozenset[str]


def _build_batch(
    ingestion: Lake,
    processed: Lake,
    manifest: Mapping[str, Any],
    state: Mapping[str, pa.Table],
    slice_rows: int,
    spool: Path,
) -> Batch:
    batch_id, sequence = manifest["batch_id"], int(manifest["sequence"])
    # The small tables at once: they make the state the other tables' references resolve
    # against. Then the growing one-table dimensions and the facts, a slice at a time; the
    # dimensions first, because facts refer to them.
    result = model(_landed(ingestion, manifest), state)
    new_state, changed = dict(result.state), set(result.changed_state)
    sliced: dict[str, WrittenTable] = {}
    builds = [
        (name, source, partial(dimension_rows, name)) for name, source in SLICED_DIMENSIONS.items()
    ]
    builds += [
        (name, source, partial(_fact_rows, name, batch_id, sequence))
        for name, source in FACT_SOURCES.items()
    ]
    for name, source, build in builds:
        slices = _landed_slices(ingestion, manifest, source, slice_rows, spool)
        with on_local_disk("transform", table=name):
            sliced[name], accepted = _write_sliced(
                processed, name, slices, build, new_state, batch_id, spool
            )
        if accepted is not None and accepted.num_rows:
            new_state[source] = upsert(new_state.get(source), accepted, source)
            changed.add(source)
        del accepted  # the slices' columns: the merged state is their compact copy
    return Batch(result, sliced, new_state, frozenset(changed))


def _write_batch(
    lake: Lake,
    source_manifest: str,
    manifest: Mapping[str, Any],
    batch: Batch,
    state_keys: Mapping[str, str],
) -> dict[str, Any]:
    """Write the batch's other tables, quarantine and state beside the tables written a slice at
    a time, then commit its manifest."""
    batch_id = manifest["batch_id"]
    result, sliced = batch.model, batch.sliced
    tables: dict[str, Any] = {}
    bounds = [day for written in sliced.values() for day in written.dates]
    for name in WAREHOUSE_TABLES:
        if name in sliced:
            tables[name] = {"key": sliced[name].key, "rows": sliced[name].rows}
            continue
        rows = calendar(pa.array(bounds, DATE)) if name == DIM_DATE.name else result.tables[name]
        key = None
        if rows.num_rows:
            key = put_once(lake, data_key(name, batch_id), parquet_bytes(rows))
        tables[name] = {"key": key, "rows": rows.num_rows}
    quarantine = dict(result.quarantine)
    quarantine.update({str(TABLES[name].source): t.quarantine for name, t in sliced.items()})
    quarantine_keys: list[str] = []
    for table, rows in quarantine.items():
        if rows.num_rows:
            key = quarantine_key(table, batch_id)
            quarantine_keys.append(put_once(lake, key, parquet_bytes(rows)))
    state = dict(state_keys)
    for table in sorted(batch.changed_state):
        key = state_key(table, batch_id)
        state[table] = put_once(lake, key, parquet_bytes(batch.state[table]))
    document = build_manifest(
        batch_id=batch_id,
        sequence=int(manifest["sequence"]),
        source_manifest=source_manifest,
        committed_at=datetime.now(UTC),
        tables=tables,
        quarantined={t: quarantine[t].num_rows for t in LOAD_ORDER},
        quarantine_keys=quarantine_keys,
        state={t: state[t] for t in STATE_TABLES if t in state},
    )
    commit(lake, document, kind=PROCESSED_KIND)
    return document


def _record(summary: dict[str, Any], document: Mapping[str, Any]) -> None:
    summary["batches"].append(document["batch_id"])
    for name, entry in document["tables"].items():
        summary["rows"][name] += entry["rows"]
    for table, count in document["quarantined"].items():
        summary["quarantined"][table] += count
    log(
        "transform.batch",
        batch_id=document["batch_id"],
        sequence=document["sequence"],
        rows={n: e["rows"] for n, e in document["tables"].items() if e["rows"]},
    )
    bad = {t: n for t, n in document["quarantined"].items() if n}
    if bad:
        log(
            "transform.quarantined",
            level="error",
            batch_id=document["batch_id"],
            quarantined=bad,
            keys=document["quarantine_keys"],
        )


def _transform_from_head(
    ingestion: Lake, processed: Lake, summary: dict[str, Any], slice_rows: int
) -> None:
    latest = newest(processed)
    previous = latest.document if latest else None
    state = read_state(processed, previous)
    for source in committed_after(ingestion, previous["sequence"] if previous else 0):
        manifest = source.document
        _check_order(manifest, previous)
        with tempfile.TemporaryDirectory(prefix="totes-transform-") as spool:
            batch = _build_batch(ingestion, processed, manifest, state, slice_rows, Path(spool))
            document = _write_batch(
                processed, source.key, manifest, batch, previous["state"] if previous else {}
            )
        state = {t: batch.state[t] for t in STATE_TABLES if t in batch.state}
        previous = document
        _record(summary, document)


def transform_pending(
    ingestion: Lake, processed: Lake, *, slice_rows: int = SLICE_ROWS
) -> dict[str, Any]:
    """Transform every committed ingestion batch newer than the latest processed batch.

    Another transform running at the same time (a manual invoke beside a cycle) may commit a
    batch first; the work is the same, so this one then carries on from the new head.
    ``slice_rows`` bounds the fact rows held at once (the output's rows do not depend on it)."""
    summary: dict[str, Any] = {
        "batches": [],
        "rows": dict.fromkeys(WAREHOUSE_TABLES, 0),
        "quarantined": dict.fromkeys(LOAD_ORDER, 0),
    }
    for _ in range(_MAX_ROUNDS):
        try:
            _transform_from_head(ingestion, processed, summary, slice_rows)
        except CommitConflictError as conflict:
            # Carry on from the batch the other transform committed (the next round checks that
            # the histories still agree); anything else is not a race and stays an error.
            latest = newest(processed)
            if latest is None or latest.key != conflict.key:
                raise
            log("transform.batch_committed_elsewhere", level="warning", reason=str(conflict))
            continue
        return summary
    raise TransformError(
        f"other transforms committed batches {_MAX_ROUNDS} times while this one ran; "
        "run it again when they are done"
    )

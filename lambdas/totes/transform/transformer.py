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
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
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
from totes.keys import AscendingKeys, KeySet, merged_by_key, repeats_a_key
from totes.lake import PARQUET_WRITE_OPTIONS, Lake, Payload, holds, parquet_bytes, read_parquet
from totes.observability import log
from totes.spool import RowGroups, on_local_disk, spooled
from totes.tables import LOAD_ORDER, source_table
from totes.transform.dates import DATE, calendar
from totes.transform.quarantine import CAPTURE_SEQ
from totes.transform.rules import (
    FACT_SOURCES,
    KEY_STATE_TABLES,
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
# The state tables held whole: the few small ones the two-table dimensions join.
ROW_STATE_TABLES = frozenset(STATE_TABLES) - frozenset(KEY_STATE_TABLES)
# Rows per row group of the state object of a table kept by its keys: what its merge with a
# batch reads at once.
STATE_GROUP_ROWS = 1 << 17


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


def read_state(
    processed: Lake, manifest: Mapping[str, Any] | None, tables: Collection[str] = STATE_TABLES
) -> dict[str, pa.Table]:
    """The state a processed manifest names, of ``tables``, read whole. Older batches kept
    whole rows of every state table; only the columns kept now are read."""
    if manifest is None:
        return {}
    return {
        table: read_parquet(processed, key).select(state_schema(table).names)
        for table, key in manifest["state"].items()
        if table in tables
    }


@dataclass(frozen=True)
class KeyState:
    """A state table kept by its keys (:data:`~totes.transform.rules.KEY_STATE_TABLES`, such as
    transaction, which grows like the facts): its state object (None before its first row) and
    the set of its keys, which is all that screening other tables needs. Its rows are read
    only to write the next state object, a row group at a time."""

    key: str | None
    known: KeySet


def _key_state(processed: Lake, manifest: Mapping[str, Any] | None) -> dict[str, KeyState]:
    """The keys of every table kept by its keys, read a row group at a time."""
    states: dict[str, KeyState] = {}
    with tempfile.TemporaryDirectory(prefix="totes-transform-") as spool:
        for table in KEY_STATE_TABLES:
            key = manifest["state"].get(table) if manifest else None
            if key is None:
                states[table] = KeyState(None, KeySet.union())
                continue
            path = spooled(processed, key, Path(spool) / f"state-{table}.parquet")
            pk = source_table(table).primary_key
            pieces = (KeySet.of(piece.column(pk)) for piece in _state_pieces(path, table, key))
            states[table] = KeyState(key, KeySet.union(*pieces))
            path.unlink()
    return states


def _state_pieces(path: Path, table: str, key: str) -> Iterator[pa.Table]:
    """A state object's rows, a row group at a time, checked to be in key order (the merge
    with a batch depends on it). Older objects kept whole rows; only today's columns are read."""
    schema = state_schema(table)
    order = AscendingKeys()
    with pq.ParquetFile(path, pre_buffer=False) as stored:
        for batch in stored.iter_batches(
            batch_size=STATE_GROUP_ROWS, columns=schema.names, use_threads=False
        ):
            piece = pa.Table.from_batches([batch]).cast(schema)
            if not order.follow(piece.column(source_table(table).primary_key)):
                raise TransformError("the state object is not in key order", table=table, key=key)
            yield piece


class AcceptedState:
    """The state columns of a key-kept table's accepted rows, spooled a slice at a time: on a
    first run they are the whole table."""

    def __init__(self, path: Path, table: str) -> None:
        self.table = table
        self.schema = state_schema(table)
        self.out = RowGroups(path, self.schema, STATE_GROUP_ROWS)
        self._order = AscendingKeys()
        self._keys: list[KeySet] = []

    def add(self, accepted: pa.Table) -> None:
        rows = accepted.select(self.schema.names).cast(self.schema)
        keys = rows.column(source_table(self.table).primary_key)
        self._order.follow(keys)
        self._keys.append(KeySet.of(keys))
        self.out.add(rows)

    @property
    def in_key_order(self) -> bool:
        return self._order.holds

    def known(self) -> KeySet:
        return KeySet.union(*self._keys)

    def pieces(self) -> Iterator[pa.Table]:
        """The rows in key order: as spooled when they came so (every extracted batch), else
        sorted whole (a replay's few rows need not come in order)."""
        self.out.close()
        if not self.out.rows:
            return
        with pq.ParquetFile(self.out.path, pre_buffer=False) as spooled_rows:
            if not self._order.holds:
                key = source_table(self.table).primary_key
                yield spooled_rows.read(use_threads=False).sort_by(key)
                return
            for batch in spooled_rows.iter_batches(use_threads=False):
                yield pa.Table.from_batches([batch])


def _merged_state(
    processed: Lake,
    previous: KeyState,
    accepted: AcceptedState,
    batch_id: str,
    spool: Path,
) -> KeyState:
    """Write the state object of a key-kept table after the batch: the previous object's rows
    with the accepted rows replacing theirs, merged a row group at a time."""
    table = accepted.table
    if previous.key is None and accepted.in_key_order:
        # A first batch: the accepted rows, spooled in key order, are the whole state already.
        accepted.out.close()
        key = put_once(processed, state_key(table, batch_id), accepted.out.path)
        accepted.out.path.unlink()
        return KeyState(key, accepted.known())
    pk = source_table(table).primary_key
    old: Iterator[pa.Table] = iter(())
    previous_path = spool / f"previous-state-{table}.parquet"
    if previous.key is not None:
        old = _state_pieces(spooled(processed, previous.key, previous_path), table, previous.key)
    merged = RowGroups(spool / f"state-{table}.parquet", accepted.schema, STATE_GROUP_ROWS)
    parts: list[KeySet] = []
    for piece in merged_by_key(old, accepted.pieces(), pk):
        merged.add(piece)
        parts.append(KeySet.of(piece.column(pk)))
    merged.close()
    key = put_once(processed, state_key(table, batch_id), merged.path)
    for spooled_file in (previous_path, accepted.out.path, merged.path):
        spooled_file.unlink(missing_ok=True)  # the spool holds one table's objects at a time
    return KeyState(key, KeySet.union(*parts))


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
    path = spooled(ingestion, key, spool / f"landed-{table}.parquet")
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
    known: Mapping[str, KeySet],
    batch_id: str,
    spool: Path,
    accepted_state: AcceptedState | None = None,
) -> WrittenTable:
    """Screen, build (``build``: accepted source rows to warehouse rows) and write ``name`` a
    slice at a time into one Parquet object (a row group per slice), built on disk in
    ``spool``: memory holds one slice, not the table. For a state table, the accepted rows'
    state columns go to ``accepted_state``."""
    source = str(TABLES[name].source)
    path = spool / f"{name}.parquet"
    writer: pq.ParquetWriter | None = None
    written = 0
    quarantined: list[pa.Table] = []
    bounds: list[date] = []
    try:
        for rows in slices:
            screened = screen(source, rows, known)
            quarantined.append(screened.quarantine)
            if accepted_state is not None:
                accepted_state.add(screened.accepted)
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
    return WrittenTable(key, written, quarantine, bounds)


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
    state after it (the tables held whole, and those kept by their keys, whose objects are
    written already) with the state tables it changed."""

    model: Model
    sliced: dict[str, WrittenTable]
    state: dict[str, pa.Table]
    key_state: dict[str, KeyState]
    changed_state: frozenset[str]


def _build_batch(
    ingestion: Lake,
    processed: Lake,
    manifest: Mapping[str, Any],
    state: Mapping[str, pa.Table],
    key_state: Mapping[str, KeyState],
    slice_rows: int,
    spool: Path,
) -> Batch:
    batch_id, sequence = manifest["batch_id"], int(manifest["sequence"])
    # The small tables at once: they make the state the other tables' references resolve
    # against. Then the growing one-table dimensions and the facts, a slice at a time; the
    # dimensions first, because facts refer to them.
    result = model(_landed(ingestion, manifest), state, {t: s.known for t, s in key_state.items()})
    changed, known, new_key_state = set(result.changed_state), dict(result.known), dict(key_state)
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
        accepted = None
        if source in KEY_STATE_TABLES:
            accepted = AcceptedState(spool / f"accepted-{source}.parquet", source)
        with on_local_disk("transform", table=name):
            sliced[name] = _write_sliced(
                processed, name, slices, build, known, batch_id, spool, accepted
            )
            if accepted is not None and accepted.out.rows:
                merged = _merged_state(processed, key_state[source], accepted, batch_id, spool)
                new_key_state[source], known[source] = merged, merged.known
                changed.add(source)
    return Batch(result, sliced, dict(result.state), new_key_state, frozenset(changed))


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
    state.update({t: s.key for t, s in batch.key_state.items() if s.key is not None})
    for table in sorted(batch.changed_state - batch.key_state.keys()):
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
    pending = committed_after(ingestion, previous["sequence"] if previous else 0)
    if not pending:
        return  # a run with nothing new reads no state
    state = read_state(processed, previous, ROW_STATE_TABLES)
    key_state = _key_state(processed, previous)
    for source in pending:
        manifest = source.document
        _check_order(manifest, previous)
        with tempfile.TemporaryDirectory(prefix="totes-transform-") as spool:
            batch = _build_batch(
                ingestion, processed, manifest, state, key_state, slice_rows, Path(spool)
            )
            document = _write_batch(
                processed, source.key, manifest, batch, previous["state"] if previous else {}
            )
        state = {t: batch.state[t] for t in STATE_TABLES if t in batch.state}
        key_state = batch.key_state
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

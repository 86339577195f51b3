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

import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
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
from totes.contracts.warehouse import DIM_DATE
from totes.errors import CommitConflictError, LakeError, ObjectExistsError, TransformError
from totes.lake import PARQUET_WRITE_OPTIONS, Lake, parquet_bytes, read_parquet
from totes.observability import log
from totes.tables import LOAD_ORDER, source_table
from totes.transform.dates import DATE, calendar
from totes.transform.keys import repeats_a_key
from totes.transform.quarantine import CAPTURE_SEQ
from totes.transform.rules import (
    FACT_SOURCES,
    STATE_TABLES,
    WAREHOUSE_TABLES,
    Model,
    fact_rows,
    model,
    referenced_dates,
    screen,
)

# A round ends when another transform commits first; each round makes progress.
_MAX_ROUNDS = 5

# Fact rows screened, built and written at once. The three facts are most of a batch's rows and
# every rule for a fact row looks only at that row and the state, so slicing them bounds a
# batch's memory by this rather than by its largest table; it is also the processed facts' row
# group size, which bounds what the load decodes at once (docs/performance.md).
FACT_SLICE_ROWS = 131_072
FACT_SOURCE_TABLES = frozenset(FACT_SOURCES.values())


def put_once(lake: Lake, key: str, data: bytes) -> str:
    """Write ``data`` at ``key`` or, after a crashed attempt left other bytes there, beside it."""
    candidate = key
    for attempt in range(1, 100):
        try:
            lake.put(candidate, data)
            return candidate
        except ObjectExistsError:
            if lake.get(candidate) == data:
                return candidate
        stem, dot, suffix = key.rpartition(".")
        candidate = f"{stem}.retry{attempt}{dot}{suffix}"
    raise LakeError(f"object {key} has too many leftover attempts")


def read_state(processed: Lake, manifest: Mapping[str, Any] | None) -> dict[str, pa.Table]:
    if manifest is None:
        return {}
    return {table: read_parquet(processed, key) for table, key in manifest["state"].items()}


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
    """Every table the batch landed except the facts' sources, which are read a slice at a
    time (:func:`_landed_slices`)."""
    batch: dict[str, pa.Table] = {}
    for table in LOAD_ORDER:
        entry = _entry(manifest, table)
        if table in FACT_SOURCE_TABLES:
            continue
        if entry.get("key"):
            rows = read_parquet(ingestion, entry["key"])
        else:
            rows = landing_schema(source_table(table)).empty_table()
        batch[table] = _checked(rows, table, entry.get("key"), 0)
    return batch


def _landed_slices(
    ingestion: Lake, manifest: Mapping[str, Any], table: str, slice_rows: int
) -> Iterator[pa.Table]:
    """A landed table in slices of at most ``slice_rows`` rows, in landed order. Only the
    compressed object and one decoded slice are held at a time."""
    key = _entry(manifest, table).get("key")
    if not key:
        return
    offset = 0
    landed = pq.ParquetFile(io.BytesIO(ingestion.get(key)))
    for batch in landed.iter_batches(batch_size=slice_rows, use_threads=False):
        rows = pa.Table.from_batches([batch])
        yield _checked(rows, table, key, offset)
        offset += rows.num_rows


@dataclass(frozen=True)
class WrittenFact:
    """A fact table of one batch, written: its object (None when no row was accepted), rows, the
    quarantine records of its source's bad rows, and the dates its rows reference."""

    key: str | None
    rows: int
    quarantine: pa.Table
    dates: list[date]


def _write_fact(
    lake: Lake,
    name: str,
    slices: Iterable[pa.Table],
    state: Mapping[str, pa.Table],
    batch_id: str,
    sequence: int,
) -> WrittenFact:
    """Screen, build and write fact ``name`` a slice at a time into one Parquet object (a row
    group per slice), so memory holds one slice, not the table."""
    source = FACT_SOURCES[name]
    sink = io.BytesIO()
    writer: pq.ParquetWriter | None = None
    written = 0
    quarantined: list[pa.Table] = []
    keys: list[pa.ChunkedArray] = []
    bounds: list[date] = []
    try:
        for rows in slices:
            keys.append(rows.column(source_table(source).primary_key))
            screened = screen(source, rows, state)
            quarantined.append(screened.quarantine)
            facts = _with_metadata(
                fact_rows(name, screened.accepted), screened.accepted, batch_id, sequence
            )
            if facts.num_rows == 0:
                continue
            if writer is None:
                writer = pq.ParquetWriter(sink, facts.schema, **PARQUET_WRITE_OPTIONS)
            writer.write_table(facts)
            written += facts.num_rows
            dates = pc.drop_null(referenced_dates({name: facts}))
            if len(dates):
                low, high = pc.min_max(dates).values()
                bounds += [low.as_py(), high.as_py()]
    finally:
        if writer is not None:
            writer.close()
    if repeats_a_key(pa.chunked_array([c for k in keys for c in k.chunks], pa.int64())):
        raise TransformError("a primary key appears twice in one batch", table=source)
    key = put_once(lake, data_key(name, batch_id), sink.getvalue()) if written else None
    quarantine = pa.concat_tables(quarantined) if quarantined else QUARANTINE_SCHEMA.empty_table()
    return WrittenFact(key, written, quarantine, bounds)


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


def _write_batch(
    lake: Lake,
    source_manifest: str,
    manifest: Mapping[str, Any],
    result: Model,
    facts: Mapping[str, WrittenFact],
    state_keys: Mapping[str, str],
) -> dict[str, Any]:
    """Write the batch's dimensions, quarantine and state beside its facts (written already),
    then commit its manifest."""
    batch_id = manifest["batch_id"]
    tables: dict[str, Any] = {}
    bounds = [day for fact in facts.values() for day in fact.dates]
    for name in WAREHOUSE_TABLES:
        if name in facts:
            tables[name] = {"key": facts[name].key, "rows": facts[name].rows}
            continue
        rows = calendar(pa.array(bounds, DATE)) if name == DIM_DATE.name else result.tables[name]
        key = None
        if rows.num_rows:
            key = put_once(lake, data_key(name, batch_id), parquet_bytes(rows))
        tables[name] = {"key": key, "rows": rows.num_rows}
    quarantine = dict(result.quarantine)
    quarantine.update({FACT_SOURCES[name]: fact.quarantine for name, fact in facts.items()})
    quarantine_keys: list[str] = []
    for table, rows in quarantine.items():
        if rows.num_rows:
            key = quarantine_key(table, batch_id)
            quarantine_keys.append(put_once(lake, key, parquet_bytes(rows)))
    state = dict(state_keys)
    for table in sorted(result.changed_state):
        key = state_key(table, batch_id)
        state[table] = put_once(lake, key, parquet_bytes(result.state[table]))
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
        # Every table but the facts' sources at once: they make the state the facts'
        # references resolve against. Then each fact a slice at a time.
        result = model(_landed(ingestion, manifest), state)
        facts = {
            name: _write_fact(
                processed,
                name,
                _landed_slices(ingestion, manifest, table, slice_rows),
                result.state,
                manifest["batch_id"],
                int(manifest["sequence"]),
            )
            for name, table in FACT_SOURCES.items()
        }
        document = _write_batch(
            processed, source.key, manifest, result, facts, previous["state"] if previous else {}
        )
        state = {t: result.state[t] for t in STATE_TABLES if t in result.state}
        previous = document
        _record(summary, document)


def transform_pending(
    ingestion: Lake, processed: Lake, *, slice_rows: int = FACT_SLICE_ROWS
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

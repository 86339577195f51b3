"""Load committed processed batches into the warehouse: once each, in capture order, atomically.

Each batch is one transaction: COPY every table of the batch into temporary staging tables, then
merge dates, the other dimensions and the facts set-based, then write the batch's ledger row. A
failure rolls all of it back and raises :class:`WarehouseError` naming the table and key, so a
retry starts from a warehouse that holds either the whole batch or none of it.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg.types.json import Jsonb

from totes.commits import committed_after
from totes.contracts.warehouse import FACTS, LOAD_ORDER, TABLES, WarehouseTable
from totes.db import FlushedCopyWriter, connect
from totes.errors import LakeError, WarehouseError, reason
from totes.lake import Lake
from totes.load import merge
from totes.load.migrations import WAREHOUSE_LOCK, apply_pending, missing
from totes.observability import log
from totes.settings import DbSettings
from totes.spool import on_local_disk, spooled

LEDGER_TABLE = "warehouse_batch_ledger"
# Rows decoded and encoded as CSV at a time while a table is copied: the load holds one such
# slice, not the whole batch as CSV (1.2 GB at scale 100). Measured at scale 100 against 10:
# 65 536-row slices peaked 1.30x (the allocators' retention grows over many large slices),
# 16 384 rows 1.18x, at the same speed.
ENCODE_ROWS = 16_384
_KEY_DETAIL = re.compile(r"Key \((?P<columns>.+?)\)=\((?P<values>.*?)\)")


@dataclass
class BatchResult:
    batch_id: str
    rows: dict[str, int] = field(default_factory=dict)
    fact_versions_added: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StagedBatch:
    """A processed batch read from the lake and checked against the contracts, before any lock
    is taken. Its objects wait in a local spool folder, compressed, and are read a row slice at
    a time while they are copied: the load's memory does not grow with the batch (the objects
    held in memory were most of the load's growth from scale 10 to 100)."""

    manifest_key: str
    batch_id: str
    sequence: int
    files: dict[str, tuple[str, Path]]  # warehouse table -> (processed key, spooled Parquet)
    newest_change: datetime | None = None  # newest last_updated among the batch's fact rows


def newest_change(data: pa.Table) -> datetime | None:
    """The newest ``last_updated`` of a fact file (date and time columns), None when empty."""
    dates = data.column("last_updated_date")
    newest_date = pc.max(dates).as_py()
    if newest_date is None:
        return None
    on_that_day = data.filter(pc.equal(dates, pa.scalar(newest_date, dates.type)))
    newest_time = pc.max(on_that_day.column("last_updated_time")).as_py()
    return datetime.combine(newest_date, newest_time or time())


def _newest_change_in(opened: Any) -> datetime | None:
    """:func:`newest_change` of a fact file, read a slice of its two stamp columns at a time."""
    found = (
        newest_change(pa.Table.from_batches([stamps]))
        for stamps in opened.iter_batches(
            batch_size=ENCODE_ROWS,
            columns=["last_updated_date", "last_updated_time"],
            use_threads=False,
        )
    )
    return max((stamp for stamp in found if stamp is not None), default=None)


def _parquet_file(table: WarehouseTable, spooled: Path, *, key: str) -> Any:
    """The processed object opened for reading, refused when it lacks a contract column."""
    import pyarrow.parquet as pq

    # No pre-buffering: it reads every row group asked for ahead of decoding, which pays on
    # high-latency storage; from the local spool it only held the object in memory (scale 100:
    # peak 226 -> 197 MB, same speed).
    opened = pq.ParquetFile(spooled, pre_buffer=False)
    present = set(opened.schema_arrow.names)
    absent = [name for name in table.arrow_schema.names if name not in present]
    if absent:
        opened.close()
        raise WarehouseError(
            f"processed file {key} lacks column(s) {', '.join(absent)}", table=table.name
        )
    return opened


def _csv(table: WarehouseTable, rows: pa.RecordBatch | pa.Table, *, key: str) -> bytes:
    """Rows in COPY order, cast to the contract's exact types, as CSV.

    PostgreSQL's CSV format tells NULL (an unquoted empty field) from an empty string (``""``),
    and Arrow's writer quotes every string, so NULLs and empty strings survive the trip.
    """
    schema = table.arrow_schema
    try:
        selected = rows.select(schema.names).cast(schema, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        raise WarehouseError(
            f"processed file {key} does not match the contract: {reason(exc)}",
            table=table.name,
        ) from None
    sink = io.BytesIO()
    pacsv.write_csv(
        selected, sink, pacsv.WriteOptions(include_header=False, quoting_style="needed")
    )
    return sink.getvalue()


def csv_slices(table: WarehouseTable, spooled: Path, *, key: str) -> Iterator[bytes]:
    """A processed Parquet object as CSV for COPY, ``ENCODE_ROWS`` rows at a time."""
    with _parquet_file(table, spooled, key=key) as opened:
        for rows in opened.iter_batches(
            batch_size=ENCODE_ROWS, columns=table.arrow_schema.names, use_threads=False
        ):
            yield _csv(table, rows, key=key)


def arrow_to_csv(table: WarehouseTable, data: pa.Table, *, key: str) -> bytes:
    """A whole table as CSV for COPY (what the benchmarks' raw-COPY baseline sends)."""
    absent = [name for name in table.arrow_schema.names if name not in data.column_names]
    if absent:
        raise WarehouseError(
            f"processed file {key} lacks column(s) {', '.join(absent)}", table=table.name
        )
    return _csv(table, data, key=key)


def stage_batch(
    processed: Lake, manifest_key: str, manifest: Mapping[str, Any], spool: Path
) -> StagedBatch:
    """Check a batch's manifest and objects and spool the objects into the ``spool`` folder."""
    batch_id = str(manifest.get("batch_id", ""))
    sequence = manifest.get("sequence")
    if not batch_id or not isinstance(sequence, int):
        raise WarehouseError(f"manifest {manifest_key} has no batch id or sequence")
    files: dict[str, tuple[str, Path]] = {}
    newest: list[datetime] = []
    for name, entry in dict(manifest.get("tables") or {}).items():
        if name not in TABLES:
            raise WarehouseError(
                f"manifest {manifest_key} names an unknown table", table=name, key=batch_id
            )
        data_key = (entry or {}).get("key")
        if not data_key:
            continue
        path = spool / f"{name}.parquet"  # names are allow-listed by the check above
        with on_local_disk("load", table=name, key=data_key):
            spooled(processed, data_key, path)
        with _parquet_file(TABLES[name], path, key=data_key) as opened:
            if TABLES[name].is_fact and (found := _newest_change_in(opened)) is not None:
                newest.append(found)
        files[name] = (data_key, path)
    return StagedBatch(manifest_key, batch_id, sequence, files, max(newest, default=None))


def _translate(exc: psycopg.Error, table: str, step: str, batch_id: str) -> WarehouseError:
    """One line naming table and key, taken from PostgreSQL's own diagnostics."""
    diag = exc.diag
    where = diag.table_name or table
    detail = diag.message_detail or ""
    key: str | None = None
    found = _KEY_DETAIL.search(detail)
    if found:
        key = f"{found['columns']}={found['values']}"
    elif diag.column_name:
        key = f"column {diag.column_name}"
    return WarehouseError(f"{step} failed in batch {batch_id}: {reason(exc)}", table=where, key=key)


def _copy(cur: psycopg.Cursor[Any], table: WarehouseTable, key: str, spooled: Path) -> None:
    # A slice that does not match the contract raises inside the COPY: psycopg ends the COPY as
    # failed and the batch's transaction rolls back.
    with cur.copy(merge.copy_sql(table), writer=FlushedCopyWriter(cur)) as copy:
        for csv in csv_slices(table, spooled, key=key):
            copy.write(csv)


def _merge_sql(table: WarehouseTable) -> str:
    if table.kind == "date":
        return merge.date_merge_sql(table)
    if table.is_fact:
        return merge.fact_merge_sql(table)
    return merge.dimension_merge_sql(table)


def _foreign_keys(cur: psycopg.Cursor[Any], spec: WarehouseTable) -> list[tuple[str, str]]:
    """The fact's foreign keys, which must be exactly those the contract declares."""
    cur.execute(merge.FOREIGN_KEYS_SQL, (spec.name,))
    found = [(str(name), str(column)) for name, column in cur.fetchall()]
    if sorted(column for _, column in found) != sorted(spec.references):
        raise WarehouseError(
            "the warehouse's foreign keys are not the contract's: "
            f"{sorted(c for _, c in found)} against {sorted(spec.references)}",
            table=spec.name,
        )
    return found


def _drop_foreign_keys_if_empty(
    cur: psycopg.Cursor[Any], spec: WarehouseTable
) -> list[tuple[str, str]]:
    """Into an empty fact table (a first load, a rebuild) rows go in without their foreign keys,
    which :func:`_add_foreign_keys` adds back before the batch commits: adding a key checks
    every row with one join, where each inserted row would otherwise cost one trigger call per
    reference (nine for a sale), most of the load. All of it is one transaction, so no other
    session sees the table without its keys (it waits for the commit). Returns what was
    dropped."""
    cur.execute(merge.is_empty_sql(spec))
    row = cur.fetchone()
    if not (row and row[0]):
        return []
    keys = _foreign_keys(cur, spec)
    for constraint, _ in keys:
        cur.execute(merge.drop_foreign_key_sql(spec, constraint))
    return keys


def _add_foreign_keys(
    cur: psycopg.Cursor[Any], spec: WarehouseTable, keys: list[tuple[str, str]]
) -> None:
    """A reference to a missing dimension row fails here, naming the key, as the row-by-row
    check does."""
    for constraint, column in keys:
        cur.execute(merge.add_foreign_key_sql(spec, constraint, column))


def apply_batch(conn: psycopg.Connection, batch: StagedBatch) -> BatchResult | None:
    """Merge one staged batch in one transaction; None when the ledger already holds it."""
    result = BatchResult(batch.batch_id)
    table, step = LEDGER_TABLE, "ledger check"
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (WAREHOUSE_LOCK,))
            cur.execute(
                f"SELECT (SELECT 1 FROM {LEDGER_TABLE} WHERE batch_id = %s), "
                f"(SELECT max(sequence) FROM {LEDGER_TABLE})",
                (batch.batch_id,),
            )
            row = cur.fetchone()
            assert row is not None
            if row[0] is not None:
                return None
            if row[1] is not None and row[1] >= batch.sequence:
                raise WarehouseError(
                    f"batch sequence {batch.sequence} arrived after sequence {row[1]} was "
                    "loaded; replay with `totes warehouse rebuild`",
                    table=LEDGER_TABLE,
                    key=batch.batch_id,
                )
            for spec in LOAD_ORDER:
                if spec.name not in batch.files:
                    continue
                table = spec.name
                step = "staging"
                cur.execute(merge.create_staging_sql(spec))
                _copy(cur, spec, *batch.files[spec.name])
                step = "merge"
                dropped = _drop_foreign_keys_if_empty(cur, spec) if spec.is_fact else []
                cur.execute(_merge_sql(spec))
                result.rows[spec.name] = max(cur.rowcount, 0)
                if spec.is_fact:
                    result.fact_versions_added[spec.name] = max(cur.rowcount, 0)
                step = "reference check"
                _add_foreign_keys(cur, spec, dropped)
            table, step = LEDGER_TABLE, "ledger write"
            cur.execute(
                f"INSERT INTO {LEDGER_TABLE} "
                "(batch_id, sequence, manifest_key, rows, fact_versions_added, newest_change) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    batch.batch_id,
                    batch.sequence,
                    batch.manifest_key,
                    Jsonb(result.rows),
                    Jsonb(result.fact_versions_added),
                    batch.newest_change,
                ),
            )
    except psycopg.Error as exc:
        raise _translate(exc, table, step, batch.batch_id) from None
    return result


def require_migrated(conn: psycopg.Connection, *, migrate: bool = False) -> None:
    """Refuse an unmigrated warehouse, or with ``migrate`` bring it up to date first.

    Checking costs one query, so a warm Lambda migrates only when the warehouse lacks a version
    its code knows (a first deploy, a new migration, a rebuild)."""
    try:
        absent = missing(conn)
    except psycopg.Error as exc:
        raise WarehouseError(f"cannot read the migration state: {reason(exc)}") from None
    if absent and migrate:
        with conn.transaction():
            applied = apply_pending(conn)
        log("load.migrated", applied=applied)
        return
    if absent:
        raise WarehouseError(
            "warehouse schema is not migrated (missing "
            + ", ".join(absent)
            + "); run `totes warehouse migrate`"
        )


def _pending_manifests(
    conn: psycopg.Connection, processed: Lake
) -> list[tuple[str, dict[str, Any]]]:
    row = conn.execute(
        f"SELECT sequence, batch_id FROM {LEDGER_TABLE} ORDER BY sequence DESC LIMIT 1"
    ).fetchone()
    loaded, loaded_batch = (int(row[0]), str(row[1])) if row else (0, None)
    # The newest loaded batch is read back too: if the lake's batch of that sequence is another
    # one, the warehouse was loaded from a different history and must not continue from it.
    history = committed_after(processed, max(loaded - 1, 0))
    if loaded_batch is not None:
        if not history or history[0].batch_id != loaded_batch:
            found = history[0].batch_id if history else "nothing"
            raise WarehouseError(
                f"the warehouse's newest batch {loaded_batch} (sequence {loaded}) is not in the "
                f"processed lake, which holds {found} there: the warehouse was loaded from "
                "another history; rebuild it from this lake with `totes warehouse rebuild`",
                table=LEDGER_TABLE,
                key=loaded_batch,
            )
        history = history[1:]
    pending: list[tuple[str, dict[str, Any]]] = []
    for batch in history:
        if batch.document.get("kind", "processed") != "processed":
            raise LakeError(f"manifest {batch.key} is not a processed batch manifest")
        pending.append((batch.key, batch.document))
    return pending


def empty_summary() -> dict[str, Any]:
    return {
        "batches": [],
        "rows": {t.name: 0 for t in LOAD_ORDER},
        "fact_versions_added": {t.name: 0 for t in FACTS},
        "newest_change": None,
    }


def newest_visible_change(conn: psycopg.Connection) -> datetime | None:
    """The newest source change (``last_updated``, the source's own wall clock) in the warehouse."""
    row = conn.execute(f"SELECT max(newest_change) FROM {LEDGER_TABLE}").fetchone()
    return row[0] if row else None


def load_pending(
    db: DbSettings,
    processed: Lake,
    *,
    migrate: bool = False,
    on_batch: Callable[[int, str], None] | None = None,
) -> dict[str, Any]:
    """Load every committed processed batch the ledger does not hold yet, oldest first.

    ``migrate`` applies pending schema migrations first (the Lambda); without it an unmigrated
    warehouse is an error (commands, which migrate explicitly). ``on_batch(total, batch_id)``
    is told of each batch loaded (progress of a long command)."""
    summary = empty_summary()
    with connect(db, error=WarehouseError, role="warehouse", autocommit=True) as conn:
        require_migrated(conn, migrate=migrate)
        pending = _pending_manifests(conn, processed)
        for manifest_key, manifest in pending:
            # A warm Lambda reuses its /tmp: each batch's spool is removed once it is applied.
            with tempfile.TemporaryDirectory(prefix="totes-load-") as spool:
                staged = stage_batch(processed, manifest_key, manifest, Path(spool))
                result = apply_batch(conn, staged)
            if on_batch is not None:
                on_batch(len(pending), staged.batch_id)
            if result is None:
                continue
            summary["batches"].append(result.batch_id)
            for name, n in result.rows.items():
                summary["rows"][name] += n
            for name, n in result.fact_versions_added.items():
                summary["fact_versions_added"][name] += n
            log(
                "load.batch",
                batch_id=result.batch_id,
                sequence=staged.sequence,
                rows=result.rows,
                fact_versions_added=result.fact_versions_added,
            )
        if summary["batches"]:
            try:
                for fact in FACTS:
                    conn.execute(merge.sync_sequence_sql(fact))
            except psycopg.Error as exc:
                raise WarehouseError(f"syncing record id sequences failed: {reason(exc)}") from None
        newest = newest_visible_change(conn)
    summary["newest_change"] = None if newest is None else newest.isoformat()
    return summary

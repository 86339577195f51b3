"""The extract run: read the source as one snapshot, land what changed, commit a manifest last.

A batch becomes visible only through its manifest, written after every data and state object, so
a failure at any point leaves nothing a reader would see and the next run (whose watermark has
not moved) captures the same rows again.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pyarrow as pa

from totes.batches import new_batch_id
from totes.commits import commit
from totes.contracts.content_hash import SCHEME as HASH_SCHEME
from totes.contracts.ingestion import (
    Fingerprint,
    Previous,
    TableEntry,
    Tail,
    build_manifest,
    landing_schema,
    load_previous,
    parse_previous,
    schema_json,
)
from totes.db import connect
from totes.errors import SourceError, reason
from totes.extract import reader
from totes.extract.capture import Captured, capture_table
from totes.extract.drift import new_columns
from totes.extract.plan import ExtractPlan, ExtractRequest
from totes.extract.window import commit_clock, full_scan_due, lower_bound, naive_utc
from totes.lake import BackgroundPuts, Lake, get_json
from totes.observability import log
from totes.settings import DbSettings, ExtractSettings
from totes.spool import on_local_disk
from totes.tables import LOAD_ORDER, SOURCE_TABLES

if TYPE_CHECKING:
    from totes.extract.rows import SnapshotRows, TableRows


def committed_watermark(lake: Lake) -> datetime | None:
    """The newest ``last_updated`` any committed batch captured, as a UTC instant."""
    return _watermark(load_previous(lake))


def _watermark(previous: Previous) -> datetime | None:
    marks = [e.watermark for e in previous.tables.values() if e.watermark is not None]
    return max(marks).replace(tzinfo=UTC) if marks else None


def _unchanged(tail: Tail | None, lower: datetime | None, found: Fingerprint) -> bool:
    return tail is not None and tail.since == lower and tail.fingerprint == found


def _summary(
    *,
    run_id: str,
    batch_id: str | None,
    key: str | None,
    sequence: int | None,
    rows: dict[str, int],
    full_scan: bool,
    window_start: datetime | None,
    window_end: datetime,
    started: float,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "batch_id": batch_id,
        "manifest_key": key,
        "sequence": sequence,
        "rows": rows,
        "full_scan": full_scan,
        "window_start": None if window_start is None else window_start.isoformat(),
        "window_end": window_end.isoformat(),
        "seconds": round(time.perf_counter() - started, 4),
    }


def _log_drift(extras: dict[str, list[str]], context: dict[str, Any]) -> None:
    for name, columns in extras.items():
        if columns:
            log("extract.schema_drift", level="warning", table=name, new_columns=columns, **context)


def _pending_tables(
    conn: psycopg.Connection,
    previous: Previous,
    lowers: dict[str, datetime | None],
    upper: datetime,
) -> list[str]:
    """Tables whose re-read window differs from what the last batch recorded (one query)."""
    found = reader.tails(
        conn,
        [SOURCE_TABLES[name] for name in LOAD_ORDER],
        [lowers[name] for name in LOAD_ORDER],
        upper,
    )
    return [
        name
        for name in LOAD_ORDER
        if not _unchanged(previous.table(name).tail, lowers[name], found[name])
    ]


def plan_extract(
    conn: psycopg.Connection,
    previous: Previous,
    request: ExtractRequest,
    settings: ExtractSettings,
    *,
    now: datetime | None = None,
    snapshot: str | None = None,
) -> ExtractPlan:
    """Decide, inside the run's snapshot, which tables to read and from where.

    The rows read never depend on ``window_start``: what is pending is decided by the committed
    state. A run given no ``window_start`` (a manual start, a DAG run without a data interval)
    records the committed watermark as the start of its window, as ``totes run`` does."""
    run_id, window_start, window_end = request.run_id, request.window_start, request.window_end
    extras = new_columns(SOURCE_TABLES, reader.catalog(conn, LOAD_ORDER))
    if window_start is None:
        window_start = _watermark(previous)
    _log_drift(extras, _context(run_id, window_start, window_end))
    # States written under an older content hash are re-hashed once, in a full scan (which
    # reads and commits every table).
    rehash = previous.batch_id is not None and previous.content_hash != HASH_SCHEME
    if rehash:
        log(
            "extract.rehash_states",
            level="warning",
            old=previous.content_hash,
            new=HASH_SCHEME,
            **_context(run_id, window_start, window_end),
        )
    full = rehash or full_scan_due(
        settings.full_scan_cadence, request.full_scan, previous.last_full_scan_at, window_end
    )
    lowers = {
        name: lower_bound(previous.table(name).watermark, settings.overlap) for name in LOAD_ORDER
    }
    upper = naive_utc(window_end)
    pending = list(LOAD_ORDER) if full else _pending_tables(conn, previous, lowers, upper)
    batch_id = None
    if pending:
        batch_id = new_batch_id(commit_clock(now or datetime.now(UTC), previous.batch_id))
    return ExtractPlan(
        run_id=run_id,
        window_start=window_start,
        window_end=window_end,
        full=full,
        rehash=rehash,
        manifest_key=previous.manifest_key,
        batch_id=batch_id,
        tables=tuple(pending),
        lowers=lowers,
        extras=extras,
        overlap=settings.overlap,
        snapshot=snapshot,
        planned_at=datetime.now(UTC),
    )


def _context(run_id: str, window_start: datetime | None, window_end: datetime) -> dict[str, Any]:
    return {"run_id": run_id, "window_start": window_start, "window_end": window_end}


def previous_at(lake: Lake, manifest_key: str | None) -> Previous:
    """The committed batch a plan was made after (a worker must diff against the same one)."""
    if manifest_key is None:
        return Previous()
    return parse_previous(manifest_key, get_json(lake, manifest_key))


def start_planned(source: SnapshotRows, plan: ExtractPlan, name: str) -> TableRows:
    """Begin reading one planned table in the open snapshot."""
    return source.start(
        SOURCE_TABLES[name],
        plan.extras.get(name, []),
        plan.lower(name),
        None if plan.full else naive_utc(plan.window_end),
    )


def capture_planned(
    rows: TableRows,
    writes: Lake,
    plan: ExtractPlan,
    previous: Previous,
    name: str,
    spool: Path,
) -> Captured:
    """Land one planned table's rows (begun by :func:`start_planned`) and write its data and
    state objects, built as files in ``spool``, which must outlast ``writes``' pending writes."""
    assert plan.batch_id is not None, "a plan with tables to read has a batch id"
    # Closed whatever happens: it stops the thread reading the rows.
    with contextlib.closing(rows), on_local_disk("extract", table=name):
        result = capture_table(
            rows,
            lake=writes,
            table=SOURCE_TABLES[name],
            extras=plan.extras.get(name, []),
            previous=previous.table(name),
            batch_id=plan.batch_id,
            upper=naive_utc(plan.window_end),
            full_scan=plan.full,
            overlap=plan.overlap,
            spool=spool,
            rehash=plan.rehash,
        )
    # Arrow's allocator keeps freed pages for reuse; hand them back between tables so that one
    # table's peak does not sit under the next one's.
    pa.default_memory_pool().release_unused()
    log(
        "extract.table",
        table=name,
        rows=result.entry.rows,
        deletes=result.entry.deletes,
        bytes=result.bytes,
        seconds=round(result.seconds, 4),
        full_scan=plan.full,
        **_context(plan.run_id, plan.window_start, plan.window_end),
    )
    return result


def capture_all(
    sources: Sequence[SnapshotRows],
    writes: Lake,
    plan: ExtractPlan,
    previous: Previous,
    spool: Path,
) -> dict[str, TableEntry]:
    """Land every planned table, the tables taking turns on ``sources`` (connections in one
    snapshot). With two, each table is begun on the other connection while the one before is
    landed: its first batches arrive while the last ones of the table before are still hashed
    and written, instead of after (docs/performance.md)."""
    entries: dict[str, TableEntry] = {}
    tables, turns = plan.tables, len(sources)

    def begin(index: int) -> TableRows | None:
        if index >= len(tables):
            return None
        return start_planned(sources[index % turns], plan, tables[index])

    upcoming = begin(0)
    for index, name in enumerate(tables):
        current = upcoming
        assert current is not None
        with contextlib.closing(current):
            upcoming = begin(index + 1) if turns > 1 else None
            try:
                entries[name] = capture_planned(current, writes, plan, previous, name, spool).entry
            except BaseException:
                if upcoming is not None:
                    upcoming.close()
                raise
        if turns == 1:
            upcoming = begin(index + 1)
    return entries


@contextlib.contextmanager
def snapshot_sources(
    open_rows: Callable[[], SnapshotRows], pool: ThreadPoolExecutor, count: int
) -> Iterator[list[SnapshotRows]]:
    """``count`` (1 or 2) row connections, the second opened on ``pool`` while this thread
    opens the first; each is closed on the way out, whatever happened to the other."""
    opening = pool.submit(open_rows) if count > 1 else None
    with contextlib.ExitStack() as stack:
        if opening is not None:
            stack.callback(_close_opened, opening)
        sources = [stack.enter_context(open_rows())]
        if opening is not None:
            sources.append(opening.result())
        yield sources


def _close_opened(opening: Future[SnapshotRows]) -> None:
    if opening.exception() is None:
        opening.result().close()


def finish_extract(
    lake: Lake,
    plan: ExtractPlan,
    previous: Previous,
    entries: Mapping[str, TableEntry],
    *,
    started: float,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Commit the planned batch from its tables' entries (or report that nothing was new)."""
    counts = {name: entries[name].rows if name in entries else 0 for name in LOAD_ORDER}
    context = _context(plan.run_id, plan.window_start, plan.window_end)
    summary = functools.partial(
        _summary,
        run_id=plan.run_id,
        rows=counts,
        full_scan=plan.full,
        window_start=plan.window_start,
        window_end=plan.window_end,
        started=started,
    )
    if plan.batch_id is None or (not plan.full and sum(counts.values()) == 0):
        log(
            "extract.nothing_new",
            rows=0,
            full_scan=plan.full,
            tables_read=len(entries),
            seconds=round(time.perf_counter() - started, 4),
            **context,
        )
        return summary(batch_id=None, key=None, sequence=None)
    missing = sorted(set(plan.tables) - set(entries))
    if missing:
        raise SourceError(
            f"the planned tables {', '.join(missing)} were not read", key=plan.batch_id
        )
    tables = {
        name: entries.get(name)
        or previous.table(name).carried(
            schema_json(landing_schema(SOURCE_TABLES[name], plan.extras.get(name, [])))
        )
        for name in LOAD_ORDER
    }
    last_scan = previous.last_full_scan_at
    if plan.full:
        last_scan = plan.window_end if last_scan is None else max(last_scan, plan.window_end)
    document = build_manifest(
        batch_id=plan.batch_id,
        previous=previous,
        run_id=plan.run_id,
        window_start=plan.window_start,
        window_end=plan.window_end,
        full_scan=plan.full,
        last_full_scan_at=last_scan,
        committed_at=datetime.now(UTC) if now is None else now,
        tables=tables,
    )
    # The one-winner commit: a batch that raced another for this sequence fails here cleanly.
    key = commit(lake, document, kind="ingestion")
    log(
        "extract.committed",
        batch_id=plan.batch_id,
        manifest_key=key,
        rows=sum(counts.values()),
        full_scan=plan.full,
        seconds=round(time.perf_counter() - started, 4),
        **context,
    )
    return summary(batch_id=plan.batch_id, key=key, sequence=previous.sequence + 1)


def run_extract(
    source: DbSettings,
    lake: Lake,
    *,
    run_id: str,
    window_start: datetime | None,
    window_end: datetime,
    full_scan: bool,
    settings: ExtractSettings,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Capture, in one invocation and one snapshot, every row version before ``window_end`` that
    no committed batch holds yet (:func:`plan_extract` says which). Returns a small JSON summary;
    ``batch_id`` is None when nothing was committed."""
    started = time.perf_counter()
    entries: dict[str, TableEntry] = {}
    try:
        # The latest manifest is read from the lake while the source connection is set up: both
        # are round trips, and a run with nothing new is little more than these.
        pool = ThreadPoolExecutor(max_workers=1)
        # Data and state objects are written while the next table is read; all are written
        # before the manifest that makes them visible. They are built as files in a spool that
        # is removed once they are.
        writes = BackgroundPuts(lake)
        spool = tempfile.TemporaryDirectory(prefix="totes-extract-")
        try:
            pending_previous = pool.submit(load_previous, lake)
            with connect(
                source, error=SourceError, role="source", application_name="totes-extract"
            ) as conn:
                reader.begin_snapshot(conn, settings.statement_timeout)
                previous = pending_previous.result()
                request = ExtractRequest(run_id, window_start, window_end, full_scan)
                plan = plan_extract(conn, previous, request, settings, now=now)
                if plan.tables:
                    # The rows come through other connections in this one's snapshot (two, when
                    # there are two tables to take turns). Their driver is loaded only here: a
                    # run with nothing new does not pay for it.
                    from totes.extract.rows import SnapshotRows

                    open_rows = functools.partial(
                        SnapshotRows.open,
                        source,
                        snapshot=reader.export_snapshot(conn),
                        statement_timeout=settings.statement_timeout,
                        application_name="totes-extract-rows",
                    )
                    count = min(2, len(plan.tables))
                    with snapshot_sources(open_rows, pool, count) as sources:
                        entries = capture_all(sources, writes, plan, previous, Path(spool.name))
            writes.flush()
        finally:
            pool.shutdown(wait=True)
            writes.close()
            spool.cleanup()
    except psycopg.Error as exc:
        raise SourceError(f"reading the source failed: {reason(exc)}") from None
    return finish_extract(lake, plan, previous, entries, started=started, now=now)

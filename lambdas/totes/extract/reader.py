"""Reading the source: the catalog, the cheap change check and COPY streamed into Arrow.

Everything runs inside one read-only REPEATABLE READ transaction opened by the caller, so the 11
tables are read as one consistent snapshot. Driver errors become :class:`SourceError` naming the
step and table.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator, Sequence
from datetime import datetime, timedelta

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from totes.contracts.content_hash import row_hashes
from totes.contracts.ingestion import HASH_COLUMN, Fingerprint
from totes.errors import SourceError, reason
from totes.extract.drift import CatalogColumn
from totes.extract.plan import snapshot_id
from totes.extract.sql import COLUMNS_QUERY, SESSION_SETUP, copy_rows_sql, tails_sql
from totes.tables import SourceTable

# CSV bytes per parsed block. The reader keeps up to four blocks in flight (one filling, two
# queued, one parsed), so this is most of the extract's fixed memory: 8 MB blocks took about
# 80 MB more at scale 100 than at scale 10 (whose tables fill few blocks), 4 MB blocks half of
# that at the same speed (docs/performance.md).
BLOCK_BYTES = 4 << 20


def begin_snapshot(
    conn: psycopg.Connection,
    statement_timeout: timedelta | None = None,
    *,
    snapshot: str | None = None,
) -> None:
    """One read-only snapshot for every query of the run; each statement limited in time.

    With ``snapshot`` (an id from :func:`export_snapshot` in another session whose transaction
    is still open) this transaction sees exactly what that one sees, so that parallel workers
    read all tables as of one instant, as ``pg_dump --jobs`` does."""
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    try:
        if snapshot is not None:
            # Must be the transaction's first statement; it takes no bound parameter, so the id
            # is checked against the shape PostgreSQL exports and quoted as a literal.
            conn.execute(
                sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot_id(snapshot)))
            )
        conn.execute(SESSION_SETUP)
        if statement_timeout is not None:
            milliseconds = int(statement_timeout.total_seconds() * 1000)
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(milliseconds),))
    except psycopg.Error as exc:
        raise SourceError(f"preparing the source session failed: {reason(exc)}") from None


def export_snapshot(conn: psycopg.Connection) -> str:
    """Export this transaction's snapshot for other sessions; valid while it stays open."""
    try:
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
    except psycopg.Error as exc:
        raise SourceError(f"exporting the source snapshot failed: {reason(exc)}") from None
    assert row is not None
    return snapshot_id(row[0])


def catalog(conn: psycopg.Connection, names: Sequence[str]) -> list[CatalogColumn]:
    try:
        rows = conn.execute(COLUMNS_QUERY, (list(names),)).fetchall()
    except psycopg.Error as exc:
        raise SourceError(f"reading the source catalog failed: {reason(exc)}") from None
    return [CatalogColumn(*row) for row in rows]


def tails(
    conn: psycopg.Connection,
    tables: Sequence[SourceTable],
    lowers: Sequence[datetime | None],
    upper: datetime,
) -> dict[str, Fingerprint]:
    if not tables:
        return {}
    query, params = tails_sql(tables, lowers, upper)
    try:
        rows = conn.execute(query, params).fetchall()
    except psycopg.Error as exc:
        raise SourceError(f"checking the source for changes failed: {reason(exc)}") from None
    return {
        name: Fingerprint(int(count), newest, int(key_sum or 0))
        for name, count, newest, key_sum in rows
    }


def _arrow_types(table: SourceTable, extras: Sequence[str]) -> dict[str, pa.DataType]:
    types = {c.name: c.arrow_type for c in table.columns}
    types.update({name: pa.string() for name in extras})
    return types


def _with_hash(batch: pa.RecordBatch, table: SourceTable) -> pa.RecordBatch:
    """The parsed rows with their content hash over the known columns (drifted ones excluded,
    so that a column appearing later does not re-version every row)."""
    hashes = row_hashes(batch, table.column_names)
    return pa.RecordBatch.from_arrays(
        [*batch.columns, hashes], names=[*batch.schema.names, HASH_COLUMN]
    )


def stream_rows(
    conn: psycopg.Connection,
    table: SourceTable,
    extras: Sequence[str],
    lower: datetime | None,
    upper: datetime | None,
    *,
    block_bytes: int = BLOCK_BYTES,
) -> Generator[pa.RecordBatch, None, None]:
    """Rows of ``table`` in key order, with their content hash, as record batches of about
    ``block_bytes`` of CSV each.

    psycopg hands COPY data over one row at a time, so whole rows are gathered into a block (by
    a reader thread, :func:`_copy_blocks`) and each block is parsed by the Arrow CSV reader with
    the exact landing types: memory stays bounded by the block size, and a block never splits a
    row (values may hold newlines)."""
    types = _arrow_types(table, extras)
    names = list(types)
    # One block is parsed at a time and the COPY stream is the bottleneck, so parser threads
    # gain nothing; parsing on this thread keeps the blocks' memory in the thread whose freed
    # pages the extractor hands back between tables (Arrow's allocator keeps pages per thread).
    read_options = pacsv.ReadOptions(
        column_names=names, block_size=block_bytes + (1 << 20), use_threads=False
    )
    parse_options = pacsv.ParseOptions(newlines_in_values=True)
    convert_options = pacsv.ConvertOptions(
        column_types=types,
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        true_values=["t"],
        false_values=["f"],
    )

    def parse(block: bytearray) -> Iterator[pa.RecordBatch]:
        try:
            parsed = pacsv.read_csv(
                pa.BufferReader(pa.py_buffer(block)),
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
        except pa.ArrowInvalid as exc:
            raise SourceError(
                f"a source value does not fit the landing type: {reason(exc)}",
                table=table.name,
            ) from None
        for batch in parsed.to_batches():
            yield _with_hash(batch, table)

    params = [value for value in (lower, upper) if value is not None]
    statement = copy_rows_sql(table, extras, lower=lower is not None, upper=upper is not None)
    blocks = _copy_blocks(conn, statement, params, block_bytes)
    try:
        for block in blocks:
            yield from parse(block)
    except psycopg.Error as exc:
        raise SourceError(
            f"reading the source table failed: {reason(exc)}", table=table.name
        ) from None
    finally:
        blocks.close()


_END = object()


def _copy_blocks(
    conn: psycopg.Connection, statement: str, params: Sequence[object], block_bytes: int
) -> Generator[bytearray, None, None]:
    """The COPY output as blocks of whole rows, read by a thread of its own.

    psycopg hands COPY data over one row per Python call, which costs about as much as parsing,
    hashing and writing the rows; reading the next block while the caller works on this one
    overlaps the two. At most two blocks wait, so memory stays bounded. Closing the generator
    early (the caller failed) stops the reader, and psycopg cancels the rest of the COPY."""
    handoff: queue.Queue[object] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def hand_over(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            with conn.cursor().copy(statement, params) as copy:
                block = bytearray()
                for row in copy:
                    block += row
                    if len(block) >= block_bytes:
                        if not hand_over(block):
                            return
                        block = bytearray()
                if block and not hand_over(block):
                    return
            hand_over(_END)
        except BaseException as exc:  # handed over, to be raised in the caller's thread
            hand_over(exc)

    reader = threading.Thread(target=read, name="copy-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = handoff.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytearray)
            yield item
    finally:
        stop.set()
        reader.join()

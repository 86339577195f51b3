"""Reading a table's rows as Arrow record batches, inside the run's snapshot.

psycopg hands COPY data to Python one row per call, which held the extract to a third of a raw
``COPY``; the ADBC PostgreSQL driver reads the result as a binary COPY in its C++ code and hands
over Arrow record batches (docs/performance.md). The catalog, the change check and the snapshot
export stay on psycopg (:mod:`totes.extract.reader`): this second connection joins the snapshot
that one exported, so every table is still read as of one instant.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from types import TracebackType

import adbc_driver_manager
import pyarrow as pa
import pyarrow.compute as pc

from totes.contracts.content_hash import row_hashes
from totes.contracts.ingestion import HASH_COLUMN, landing_schema
from totes.db import connect_arrow
from totes.errors import SourceError, reason
from totes.extract.plan import snapshot_id
from totes.extract.sql import SESSION_SETUP, rows_sql, window_settings_sql
from totes.settings import DbSettings
from totes.tables import SourceTable

# The driver's target size of one record batch. At most two batches wait beside the one being
# hashed and written, so this bounds most of the extract's fixed memory; 4 MB is where the COPY
# blocks of the earlier reader stopped gaining (docs/performance.md).
BATCH_BYTES = 4 << 20
_BATCH_HINT = "adbc.postgresql.batch_size_hint_bytes"


class SnapshotRows:
    """One source connection in a read-only snapshot, reading one table's rows at a time."""

    def __init__(
        self,
        database: adbc_driver_manager.AdbcDatabase,
        connection: adbc_driver_manager.AdbcConnection,
    ) -> None:
        self._database = database
        self._connection = connection

    @classmethod
    def open(
        cls,
        db: DbSettings,
        *,
        snapshot: str | None,
        statement_timeout: timedelta | None = None,
        application_name: str = "totes-extract",
    ) -> SnapshotRows:
        """Connect and begin a read-only REPEATABLE READ transaction. With ``snapshot`` (an id
        exported by a session whose transaction is still open) it sees exactly what that one
        sees, as ``pg_dump --jobs`` workers do; without, it takes a snapshot of its own."""
        database, connection = connect_arrow(
            db, error=SourceError, role="source", application_name=application_name
        )
        rows = cls(database, connection)
        try:
            rows._begin(snapshot, statement_timeout)
        except BaseException:
            rows.close()
            raise
        return rows

    def _begin(self, snapshot: str | None, statement_timeout: timedelta | None) -> None:
        try:
            self._execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            if snapshot is not None:
                # SET TRANSACTION SNAPSHOT takes no parameter: the id is checked against the
                # shape PostgreSQL exports (hex digits and dashes), so it cannot leave the quotes.
                self._execute(f"SET TRANSACTION SNAPSHOT '{snapshot_id(snapshot)}'")
            for setup in SESSION_SETUP:
                self._execute(setup)
            if statement_timeout is not None:
                milliseconds = int(statement_timeout.total_seconds() * 1000)
                self._execute(
                    "SELECT set_config('statement_timeout', $1, false)", [str(milliseconds)]
                )
        except adbc_driver_manager.Error as exc:
            raise SourceError(f"preparing the source session failed: {reason(exc)}") from None

    def _execute(self, query: str, params: Sequence[str] = ()) -> None:
        statement = adbc_driver_manager.AdbcStatement(self._connection)
        try:
            statement.set_sql_query(query)
            if params:
                statement.bind(
                    pa.record_batch(
                        [pa.array([value], pa.string()) for value in params],
                        names=[f"p{i}" for i in range(len(params))],
                    )
                )
            statement.execute_update()
        finally:
            statement.close()

    def start(
        self,
        table: SourceTable,
        extras: Sequence[str],
        lower: datetime | None,
        upper: datetime | None,
        *,
        batch_bytes: int = BATCH_BYTES,
    ) -> TableRows:
        """Begin reading the rows of ``table`` with ``lower <= last_updated < upper`` (each bound
        optional) in key order, with the exact landing types and their content hash.

        The query is sent and its batches start arriving, on a thread of their own (the driver
        works without the interpreter lock), before the caller asks for the first: the extract
        begins the next table on a second connection while it writes this one. Until the
        result is read to its end or closed, the connection can run nothing else."""
        types = _read_types(table, extras)
        try:
            window = window_settings_sql(lower=lower is not None, upper=upper is not None)
            if window is not None:
                self._execute(
                    window, [_bound(value) for value in (lower, upper) if value is not None]
                )
            statement = adbc_driver_manager.AdbcStatement(self._connection)
        except adbc_driver_manager.Error as exc:
            raise _read_failed(exc, table) from None
        try:
            statement.set_sql_query(
                rows_sql(table, extras, lower=lower is not None, upper=upper is not None)
            )
            statement.set_options(**{_BATCH_HINT: str(batch_bytes)})
            handle, _ = statement.execute_query()
            batches = pa.RecordBatchReader.from_stream(handle)
        except adbc_driver_manager.Error as exc:
            statement.close()
            raise _read_failed(exc, table) from None
        return TableRows(statement, batches, table, types)

    def close(self) -> None:
        """End the transaction (read-only: nothing to keep) and the connection."""
        try:
            self._connection.close()
        finally:
            self._database.close()

    def __enter__(self) -> SnapshotRows:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _read_types(table: SourceTable, extras: Sequence[str]) -> dict[str, pa.DataType]:
    """Column name to landing type, in the row query's order: the landing schema before its
    hash and op columns (drifted columns as text)."""
    schema = landing_schema(table, extras)
    read = len(table.columns) + len(extras)
    return dict(zip(schema.names[:read], schema.types[:read], strict=True))


def _bound(value: datetime) -> str:
    # The query casts the setting with ::timestamp, which would drop an offset silently.
    if value.tzinfo is not None:
        raise ValueError(f"window bound {value} must be naive UTC")
    return value.isoformat(sep=" ")


def _read_failed(exc: BaseException, table: SourceTable) -> SourceError:
    return SourceError(f"reading the source table failed: {reason(exc)}", table=table.name)


def _landed(
    batch: pa.RecordBatch, types: dict[str, pa.DataType], table: SourceTable
) -> pa.RecordBatch:
    """The driver's columns in the landing types: it gives integers as int32, timestamps in
    microseconds and numeric as text (PostgreSQL's exact decimal form). The casts are safe: a
    value that does not fit (a sub-millisecond timestamp, a price beyond numeric(10,2)) fails
    the read instead of changing."""
    columns = []
    for column, wanted in zip(batch.columns, types.values(), strict=True):
        if isinstance(column, pa.ExtensionArray):
            column = column.storage
        if column.type != wanted:
            try:
                column = pc.cast(column, wanted)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SourceError(
                    f"a source value does not fit the landing type: {reason(exc)}",
                    table=table.name,
                ) from None
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=list(types))


def _with_hash(batch: pa.RecordBatch, table: SourceTable) -> pa.RecordBatch:
    """The rows with their content hash over the known columns (drifted ones excluded, so that a
    column appearing later does not re-version every row)."""
    hashes = row_hashes(batch, table.column_names)
    return pa.RecordBatch.from_arrays(
        [*batch.columns, hashes], names=[*batch.schema.names, HASH_COLUMN]
    )


_END = object()


class TableRows:
    """One table's rows as they are read: batches with landing types and content hashes, read
    ahead by a thread of their own. At most two wait, so memory stays bounded; :meth:`close`
    (also after the last batch) stops the thread at its next hand-over and frees the
    connection; as a context manager it is closed on the way out."""

    def __init__(
        self,
        statement: adbc_driver_manager.AdbcStatement,
        batches: pa.RecordBatchReader,
        table: SourceTable,
        types: dict[str, pa.DataType],
    ) -> None:
        self._statement, self._batches = statement, batches
        self._table, self._types = table, types
        self._handoff: queue.Queue[object] = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="source-rows", daemon=True)
        self._reader.start()

    def _hand_over(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            while True:
                try:
                    batch = self._batches.read_next_batch()
                except StopIteration:
                    self._hand_over(_END)
                    return
                if not self._hand_over(batch):
                    return
        except (pa.ArrowException, OSError, adbc_driver_manager.Error) as exc:
            # The driver reports a failed COPY (a timeout, a dropped connection) this way.
            self._hand_over(_read_failed(exc, self._table))
        except BaseException as exc:  # handed over, to be raised in the caller's thread
            self._hand_over(exc)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while True:
            item = self._handoff.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, pa.RecordBatch)
            yield _with_hash(_landed(item, self._types, self._table), self._table)

    def __enter__(self) -> TableRows:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._reader.join()
        try:
            self._batches.close()
        finally:
            self._statement.close()

"""The local disk the stages spool large objects on (a Lambda's ``/tmp``).

Extract, transform and load each build or copy objects there so that memory stays bounded by a
slice, not by a table. The disk is sized by Terraform (``lambda_ephemeral_storage_mb``); when an
object does not fit, the error says so, naming the stage and the table, instead of surfacing as
a bare operating-system error from deep inside a writer.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from totes.errors import DiskFullError, reason
from totes.lake import PARQUET_WRITE_OPTIONS, Lake

# No space left, over a file size limit, over a quota: the disk is too small for the object.
_FULL = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


@contextmanager
def on_local_disk(step: str, *, table: str | None = None, key: object = None) -> Iterator[None]:
    """Turn a full local disk inside the block into a :class:`DiskFullError`."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _FULL:
            raise
        raise DiskFullError(
            f"the local disk is too small for what this step spools there ({reason(exc)}); "
            "the Terraform variable lambda_ephemeral_storage_mb sets each function's /tmp",
            step=step,
            table=table,
            key=key,
        ) from None


def spooled(lake: Lake, key: str, path: Path) -> Path:
    """The object ``key`` copied into a local file, streamed, never held whole."""
    with path.open("wb") as sink:
        lake.get_into(key, sink)
    return path


class RowGroups:
    """A Parquet file written a row group at a time from parts of any size. The file is created
    at the first row, so one that never gets a row never exists."""

    def __init__(self, path: Path, schema: pa.Schema, rows: int) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self._group_rows = rows
        self._parts: list[pa.Table] = []
        self._buffered = 0
        self._writer: pq.ParquetWriter | None = None

    def add(self, part: pa.Table | pa.RecordBatch) -> None:
        if part.num_rows == 0:
            return
        table = pa.Table.from_batches([part]) if isinstance(part, pa.RecordBatch) else part
        self._parts.append(table)
        self._buffered += part.num_rows
        self.rows += part.num_rows
        if self._buffered >= self._group_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._parts:
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self.schema, **PARQUET_WRITE_OPTIONS)
        group = pa.concat_tables(self._parts)
        self._writer.write_table(group, row_group_size=group.num_rows)
        self._parts, self._buffered = [], 0

    def close(self) -> None:
        try:
            self._flush()
        finally:
            if self._writer is not None:
                self._writer.close()

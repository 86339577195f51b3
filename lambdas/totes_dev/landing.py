"""Known rows made into landed rows, for tests and benchmarks that land data without a database.

Rows that never passed through a source get the content hash the extract would give them.
"""

from __future__ import annotations

import pyarrow as pa

from totes.contracts.content_hash import row_hashes
from totes.contracts.ingestion import HASH_COLUMN, OP_COLUMN, UPSERT
from totes.tables import source_table


def with_landing_columns(table: str, rows: pa.Table, op: str = UPSERT) -> pa.Table:
    """Add ``_content_hash`` (the extract's hash of the known columns) and ``_op`` when missing."""
    if HASH_COLUMN not in rows.column_names:
        rows = rows.append_column(HASH_COLUMN, row_hashes(rows, source_table(table).column_names))
    if OP_COLUMN not in rows.column_names:
        rows = rows.append_column(OP_COLUMN, pa.repeat(pa.scalar(op, pa.string()), rows.num_rows))
    return rows

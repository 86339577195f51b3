"""Known rows made into landed rows, for tests and benchmarks that land data without a database.

The extract computes ``_content_hash`` in PostgreSQL; rows that never passed through a source get
a stable hash of their known columns here instead (pandas' row hash: development tooling only,
never in a Lambda).
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from totes.contracts.ingestion import HASH_COLUMN, OP_COLUMN, UPSERT
from totes.tables import source_table


def with_landing_columns(table: str, rows: pa.Table, op: str = UPSERT) -> pa.Table:
    """Add ``_content_hash`` (a stable hash of the known columns) and ``_op`` when missing."""
    if HASH_COLUMN not in rows.column_names:
        known = rows.select(source_table(table).column_names).to_pandas()
        hashes = pd.util.hash_pandas_object(known, index=False).to_numpy()
        rows = rows.append_column(HASH_COLUMN, pc.cast(pa.array(hashes), pa.string()))
    if OP_COLUMN not in rows.column_names:
        rows = rows.append_column(OP_COLUMN, pa.repeat(pa.scalar(op, pa.string()), rows.num_rows))
    return rows

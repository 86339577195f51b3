"""Replay quarantined rows after the cause is fixed.

A row is quarantined because of the data (fixed at the source: the extract lands the corrected
version by itself, no replay needed) or because of a rule or a missing reference (a currency
added to the lookup, a referenced row that arrived later). For the latter the original values
are sent back through the front door: a new ingestion batch holding exactly the quarantined
rows, which the next transform run treats like any other batch and quarantines again if the
cause is still there. Loading is idempotent by content hash, so replaying a version the
warehouse already holds adds nothing.

A row whose key has since been superseded by a newer valid version (greater ``last_updated`` in
the processed current state) is skipped: replaying it would roll a dimension back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from totes.commits import newest
from totes.contracts.ingestion import land_rows, to_landing_types
from totes.contracts.processed import is_quarantine_of
from totes.errors import TransformError
from totes.lake import Lake, read_parquet
from totes.tables import source_table
from totes.transform.quarantine import original_rows
from totes.transform.transformer import read_state


def _original(table: str, records: pa.Table) -> pa.Table:
    """The quarantined rows as landed: every value comes back as the text it was kept as."""
    rows = pa.Table.from_pylist(original_rows(records))
    rows = pa.table({n: pc.cast(rows.column(n), pa.string()) for n in rows.column_names})
    return to_landing_types(table, rows)


def replay(ingestion: Lake, processed: Lake, quarantine_keys: Sequence[str]) -> dict[str, Any]:
    """Land the rows of ``quarantine_keys`` (from a processed manifest's ``quarantine_keys`` or
    the error log) as a new ingestion batch; return its manifest key and counts."""
    latest = newest(processed)
    state = read_state(processed, latest.document if latest else None)
    tables: dict[str, list[pa.Table]] = {}
    skipped: dict[str, int] = {}
    for key in quarantine_keys:
        records = read_parquet(processed, key)
        if records.num_rows == 0:
            continue
        table = records.column("table")[0].as_py()
        if not is_quarantine_of(key, table):
            raise TransformError("quarantine object names another table", table=table, key=key)
        rows = _original(table, records)
        current = state.get(table)
        if current is not None:
            pk = source_table(table).primary_key
            newer = current.filter(pc.is_in(current.column(pk), rows.column(pk)))
            joined = rows.select([pk, "last_updated"]).join(
                newer.select([pk, "last_updated"]).rename_columns([pk, "current"]), pk
            )
            superseded = joined.filter(
                pc.greater(joined.column("current"), joined.column("last_updated"))
            ).column(pk)
            keep = pc.invert(pc.is_in(rows.column(pk), superseded))
            skipped[table] = skipped.get(table, 0) + rows.num_rows - pc.sum(keep).as_py()
            rows = rows.filter(keep)
        tables.setdefault(table, []).append(rows)
    merged = {t: pa.concat_tables(parts, promote_options="default") for t, parts in tables.items()}
    for name, rows in merged.items():
        pk = rows.column(source_table(name).primary_key)
        if pc.count_distinct(pk).as_py() != len(pk):
            raise TransformError(
                "the same key is quarantined twice; replay one at a time", table=name
            )
    counts = {t: rows.num_rows for t, rows in merged.items() if rows.num_rows}
    if not counts:
        return {"manifest_key": None, "rows": {}, "skipped": skipped}
    manifest = land_rows(
        ingestion,
        {t: rows for t, rows in merged.items() if rows.num_rows},
        run_id="replay",
        extra={"replay_of": list(quarantine_keys)},
    )
    return {"manifest_key": manifest, "rows": counts, "skipped": skipped}

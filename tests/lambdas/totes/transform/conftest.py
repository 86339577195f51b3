"""Fixtures of the transform tests: the real Nov 2024 snapshot in landing form, and a way to land
rows as committed ingestion batches exactly by the lake contract."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from totes.contracts.ingestion import land_rows, to_landing_types
from totes.lake import Lake
from totes.tables import SOURCE_TABLES
from totes_dev.landing import with_landing_columns

Land = Callable[..., str]


@pytest.fixture(scope="session")
def nov_source(snapshots: Path) -> dict[str, pa.Table]:
    """The 11 tables of the 2024-11-15 snapshot, cast to the exact landing types."""
    folder = snapshots / "snapshot-2024-11-15"
    tables: dict[str, pa.Table] = {}
    for name, spec in SOURCE_TABLES.items():
        raw = pq.read_table(folder / f"{name}.parquet").replace_schema_metadata(None)
        tables[name] = to_landing_types(name, raw).select(spec.column_names)
    return tables


def land_batch(
    lake: Lake, tables: Mapping[str, pa.Table], *, deletes: Mapping[str, pa.Table] | None = None
) -> str:
    """Commit upserts (and tombstones) as the next ingestion batch; return its manifest key."""
    rows = {name: with_landing_columns(name, t) for name, t in tables.items()}
    for name, gone in (deletes or {}).items():
        tomb = with_landing_columns(name, gone, op="delete")
        rows[name] = pa.concat_tables([rows[name], tomb]) if name in rows else tomb
    return land_rows(lake, rows, run_id="test", now=datetime.now(UTC))


@pytest.fixture
def land() -> Land:
    return land_batch

"""The processed lake's contract: where the transform's objects live, the columns a fact file
adds, the quarantine record, and the manifest of a processed batch. The transform writes it; the
load, the quarantine commands and replay read it (layout: docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pyarrow as pa

from totes.batches import dated_key
from totes.contracts.warehouse import FACT_METADATA

FORMAT = 1
KIND = "processed"

STATE_PREFIX = "_state/"
QUARANTINE_PREFIX = "_quarantine/"

# The columns a fact file carries after the warehouse's own, as the load stages them.
FACT_METADATA_SCHEMA = pa.schema([pa.field(c.name, c.arrow_type) for c in FACT_METADATA])

# One row per quarantined source row: its table and key, why, and every landed value as text.
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("table", pa.string(), nullable=False),
        pa.field("key", pa.int64()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("row_json", pa.string(), nullable=False),
    ]
)


def data_key(table: str, batch_id: str) -> str:
    return dated_key(table, batch_id)


def state_key(table: str, batch_id: str) -> str:
    """The current full rows of a source table after a batch (dimensions, reference checks)."""
    return f"{STATE_PREFIX}{table}/{batch_id}.parquet"


def quarantine_key(table: str, batch_id: str) -> str:
    return dated_key(f"{QUARANTINE_PREFIX}{table}", batch_id)


def is_quarantine_of(key: str, table: str) -> bool:
    return key.startswith(f"{QUARANTINE_PREFIX}{table}/")


def build_manifest(
    *,
    batch_id: str,
    sequence: int,
    source_manifest: str,
    committed_at: datetime,
    tables: Mapping[str, Mapping[str, Any]],
    quarantined: Mapping[str, int],
    quarantine_keys: list[str],
    state: Mapping[str, str],
) -> dict[str, Any]:
    """The manifest committing the processed batch of ingestion batch ``batch_id``."""
    return {
        "format": FORMAT,
        "kind": KIND,
        "batch_id": batch_id,
        "sequence": sequence,
        "source_manifest": source_manifest,
        "committed_at": committed_at.isoformat(timespec="milliseconds"),
        "tables": {name: dict(entry) for name, entry in tables.items()},
        "quarantined": dict(quarantined),
        "quarantine_keys": list(quarantine_keys),
        "state": dict(state),
    }

"""The ingestion manifest (pure): what a committed batch holds and what the next run carries on.

Layout follows the lake contract in docs/architecture.md. Each table entry also records ``tail``:
the fingerprint of the captured rows inside the next run's re-read window, which lets a run with
nothing new skip every COPY after one cheap query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from totes.errors import LakeError
from totes.extract.diff import Fingerprint
from totes.extract.window import format_naive, parse_naive

FORMAT = 1
KIND = "ingestion"


@dataclass(frozen=True)
class Tail:
    since: datetime | None
    fingerprint: Fingerprint

    def to_json(self) -> dict[str, Any]:
        return {
            "since": format_naive(self.since),
            "rows": self.fingerprint.rows,
            "newest": format_naive(self.fingerprint.newest),
            "key_sum": self.fingerprint.key_sum,
        }

    @classmethod
    def from_json(cls, value: Any) -> Tail | None:
        if not isinstance(value, dict):
            return None
        return cls(
            parse_naive(value.get("since")),
            Fingerprint(
                int(value["rows"]), parse_naive(value.get("newest")), int(value["key_sum"])
            ),
        )


@dataclass(frozen=True)
class TableEntry:
    """One table of a manifest; ``key``/counts describe this batch, the rest is carried on."""

    key: str | None = None
    rows: int = 0
    upserts: int = 0
    deletes: int = 0
    watermark: datetime | None = None
    state_key: str | None = None
    schema: list[dict[str, str]] = field(default_factory=list)
    tail: Tail | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "rows": self.rows,
            "upserts": self.upserts,
            "deletes": self.deletes,
            "watermark": format_naive(self.watermark),
            "state_key": self.state_key,
            "schema": self.schema,
            "tail": None if self.tail is None else self.tail.to_json(),
        }

    def carried(self, schema: list[dict[str, str]]) -> TableEntry:
        """This table's entry in a batch that landed none of its rows."""
        return TableEntry(
            watermark=self.watermark, state_key=self.state_key, schema=schema, tail=self.tail
        )


@dataclass(frozen=True)
class Previous:
    """What the latest committed manifest says (empty before the first batch)."""

    manifest_key: str | None = None
    batch_id: str | None = None
    sequence: int = 0
    last_full_scan_at: datetime | None = None
    tables: dict[str, TableEntry] = field(default_factory=dict)

    def table(self, name: str) -> TableEntry:
        return self.tables.get(name, TableEntry())


def schema_json(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def parse_previous(manifest_key: str, document: dict[str, Any]) -> Previous:
    try:
        if document.get("kind") != KIND or document.get("format") != FORMAT:
            raise ValueError("not an ingestion manifest of format 1")
        tables = {
            name: TableEntry(
                watermark=parse_naive(entry.get("watermark")),
                state_key=entry.get("state_key"),
                schema=list(entry.get("schema") or []),
                tail=Tail.from_json(entry.get("tail")),
            )
            for name, entry in document["tables"].items()
        }
        last_scan = document.get("last_full_scan_at")
        return Previous(
            manifest_key=manifest_key,
            batch_id=str(document["batch_id"]),
            sequence=int(document["sequence"]),
            last_full_scan_at=None if last_scan is None else datetime.fromisoformat(last_scan),
            tables=tables,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LakeError(f"manifest {manifest_key} is unreadable: {exc}") from None


def build_manifest(
    *,
    batch_id: str,
    previous: Previous,
    run_id: str,
    window_start: datetime | None,
    window_end: datetime,
    full_scan: bool,
    last_full_scan_at: datetime | None,
    committed_at: datetime,
    tables: dict[str, TableEntry],
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "kind": KIND,
        "batch_id": batch_id,
        "sequence": previous.sequence + 1,
        "previous_batch_id": previous.batch_id,
        "run_id": run_id,
        "window_start": None if window_start is None else window_start.isoformat(),
        "window_end": window_end.isoformat(),
        "full_scan": full_scan,
        "last_full_scan_at": None if last_full_scan_at is None else last_full_scan_at.isoformat(),
        "committed_at": committed_at.isoformat(),
        "tables": {name: entry.to_json() for name, entry in tables.items()},
    }

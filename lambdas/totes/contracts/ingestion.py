"""The ingestion lake's contract: what landed rows carry, where objects live, and the manifest
of a committed batch (build and parse), written the same way by every writer.

The extract is the normal writer; :func:`land_rows` is the other, for rows that re-enter by the
front door (a replay of quarantined rows; tests and benchmarks landing known data). Both build
their manifest here, so every batch carries the same fields, ``tail`` included. Layout follows
the lake contract in docs/architecture.md. Each table entry records ``tail``: the fingerprint of
the captured rows inside the next run's re-read window, which lets a run with nothing new skip
every COPY after one cheap query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from totes.batches import batch_time, dated_key, new_batch_id
from totes.commits import commit, newest
from totes.contracts.content_hash import LEGACY_SCHEME
from totes.contracts.content_hash import SCHEME as CONTENT_HASH_SCHEME
from totes.errors import LakeError
from totes.lake import Lake, parquet_bytes
from totes.tables import LOAD_ORDER, SourceTable, source_table

FORMAT = 1
KIND = "ingestion"

# Columns every landed row carries after the source's own.
HASH_COLUMN = "_content_hash"  # of the row's known columns: totes.contracts.content_hash
OP_COLUMN = "_op"
UPSERT, DELETE = "upsert", "delete"  # a row version, or a tombstone: its key left the source
OPS = (UPSERT, DELETE)

STATE_PREFIX = "_state/"


def data_key(table: str, batch_id: str) -> str:
    return dated_key(table, batch_id)


def state_key(table: str, batch_id: str) -> str:
    """The extract's captured state of ``table`` after a batch (see docs/architecture.md)."""
    return f"{STATE_PREFIX}{table}/{batch_id}.parquet"


def source_schema(table: str) -> pa.Schema:
    """The source columns of ``table`` with their exact landing types."""
    return pa.schema([pa.field(c.name, c.arrow_type) for c in source_table(table).columns])


def landing_schema(table: SourceTable, extras: Sequence[str] = ()) -> pa.Schema:
    """A landed file: the source columns, any drifted new column as text, then hash and op.

    Every source column may be NULL here even where the source declares NOT NULL: the lake keeps
    what the source held, and a value the warehouse needs is the transform's to check (a row
    without it is quarantined with its reason, not lost with the whole batch)."""
    fields = [field.with_nullable(True) for field in table.arrow_schema]
    fields += [pa.field(name, pa.string()) for name in extras]
    fields += [
        pa.field(HASH_COLUMN, pa.string(), nullable=False),
        pa.field(OP_COLUMN, pa.string(), nullable=False),
    ]
    return pa.schema(fields)


@dataclass(frozen=True)
class Fingerprint:
    """What the rows of a re-read window look like: count, newest change and sum of keys."""

    rows: int
    newest: datetime | None
    key_sum: int


def format_naive(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds")


def parse_naive(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


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

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> TableEntry:
        """The inverse of :meth:`to_json` (an entry handed from a worker to the commit)."""
        return cls(
            key=value.get("key"),
            rows=int(value.get("rows", 0)),
            upserts=int(value.get("upserts", 0)),
            deletes=int(value.get("deletes", 0)),
            watermark=parse_naive(value.get("watermark")),
            state_key=value.get("state_key"),
            schema=list(value.get("schema") or []),
            tail=Tail.from_json(value.get("tail")),
        )

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
    window_start: datetime | None = None
    window_end: datetime | None = None
    # The content hash definition the states of this manifest were written with.
    content_hash: str = CONTENT_HASH_SCHEME

    def table(self, name: str) -> TableEntry:
        return self.tables.get(name, TableEntry())


def schema_json(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


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
        return Previous(
            manifest_key=manifest_key,
            batch_id=str(document["batch_id"]),
            sequence=int(document["sequence"]),
            last_full_scan_at=_instant(document.get("last_full_scan_at")),
            tables=tables,
            window_start=_instant(document.get("window_start")),
            window_end=_instant(document.get("window_end")),
            content_hash=str(document.get("content_hash", LEGACY_SCHEME)),
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
    content_hash: str = CONTENT_HASH_SCHEME,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest committing ``batch_id`` after ``previous``: every table, carried or new.
    ``content_hash`` names the hash definition of the states the manifest points at."""
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
        "content_hash": content_hash,
        **(extra or {}),
    }


def load_previous(lake: Lake) -> Previous:
    """The newest committed batch of the ingestion lake, parsed (empty before the first)."""
    latest = newest(lake)
    if latest is None:
        return Previous()
    return parse_previous(latest.key, latest.document)


def to_landing_types(table: str, rows: pa.Table) -> pa.Table:
    """Cast the known columns of ``rows`` to the exact landing types, keeping extra columns.

    Accepts the lossy forms found in the wild: float money (rounded to 2 dp, as every real value
    has exactly two), float ids with NaN for NULL, nanosecond timestamps, and text (the form
    quarantined rows are kept in).
    """
    out = rows
    for column in source_table(table).columns:
        values = rows.column(column.name)
        if pa.types.is_floating(values.type):
            values = pc.if_else(pc.is_nan(values), pa.scalar(None, values.type), values)
            if pa.types.is_decimal(column.arrow_type):
                values = pc.round(values, 2)
        if pa.types.is_string(values.type) and pa.types.is_boolean(column.arrow_type):
            values = pc.equal(pc.utf8_lower(values), "true")
        index = out.schema.get_field_index(column.name)
        out = out.set_column(index, column.name, pc.cast(values, column.arrow_type))
    return out


def _landed_entry(
    lake: Lake, name: str, rows: pa.Table, batch_id: str, before: TableEntry
) -> TableEntry:
    spec = source_table(name)
    rows = rows.sort_by(spec.primary_key)
    key = data_key(name, batch_id)
    lake.put(key, parquet_bytes(rows))
    deletes = int(pc.sum(pc.equal(rows.column(OP_COLUMN), DELETE)).as_py() or 0)
    latest_change = pc.max(rows.column("last_updated")).as_py()
    watermark = before.watermark
    return replace(
        before,
        key=key,
        rows=rows.num_rows,
        upserts=rows.num_rows - deletes,
        deletes=deletes,
        watermark=latest_change if watermark is None else max(watermark, latest_change),
    )


def land_rows(
    lake: Lake,
    tables: Mapping[str, pa.Table],
    *,
    run_id: str,
    now: datetime | None = None,
    full_scan: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Commit ``tables`` (landing types, with ``_content_hash`` and ``_op``) as the next ingestion
    batch; returns its manifest key. Tables not given carry their previous entry forward.

    Such a batch must not move the extract: window, last full scan, state keys and tails are
    carried forward, and watermarks move only to a newer row landed here."""
    previous = load_previous(lake)
    now = now or datetime.now(UTC)
    if previous.batch_id is not None:
        # Batch ids order batches; a clock that has not moved on must not reorder them.
        now = max(now, batch_time(previous.batch_id) + timedelta(milliseconds=1))
    batch_id = new_batch_id(now)
    entries: dict[str, TableEntry] = {}
    for name in LOAD_ORDER:
        before = previous.table(name).carried(schema_json(source_table(name).arrow_schema))
        rows = tables.get(name)
        if rows is not None and rows.num_rows:
            entries[name] = _landed_entry(lake, name, rows, batch_id, before)
        else:
            entries[name] = before
    document = build_manifest(
        batch_id=batch_id,
        previous=previous,
        run_id=run_id,
        window_start=previous.window_start,
        window_end=previous.window_end or now,
        full_scan=full_scan,
        last_full_scan_at=previous.last_full_scan_at,
        committed_at=now,
        tables=entries,
        content_hash=previous.content_hash,  # the states are carried, not rewritten
        extra=extra,
    )
    return commit(lake, document, kind=KIND)

"""What one extract will read, decided once and shared by every worker of a fanned-out extract.

The state machine runs the extract as many invocations: one holds the source snapshot and writes
this plan into the ingestion lake, one per table reads that table inside the same snapshot, and
one commits. Every invocation reads the plan, so they agree on the batch id, the previous
manifest, the window and each table's re-read bounds. Pure: no driver, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from totes.clock import stored_instant
from totes.contracts.ingestion import format_naive, parse_naive
from totes.errors import SettingsError
from totes.tables import LOAD_ORDER

# Objects of one fanned-out extract attempt live under this prefix of the ingestion lake. They are
# never named by a manifest, so readers of batches never see them.
RUNS_PREFIX = "_runs/"

# An attempt id is a UUID (States.UUID() in the state machine); it becomes part of a lake key.
_ATTEMPT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# What pg_export_snapshot() returns (for example 00000003-0000001B-1); it is spliced into
# SET TRANSACTION SNAPSHOT, which takes no bound parameter, so only this shape is accepted.
_SNAPSHOT = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{8}-[0-9]{1,10}$")


def attempt_id(value: object) -> str:
    if not isinstance(value, str) or not _ATTEMPT.match(value):
        raise SettingsError(f"extract attempt id must be a lower-case UUID, not {value!r}")
    return value


def snapshot_id(value: object) -> str:
    if not isinstance(value, str) or not _SNAPSHOT.match(value):
        raise SettingsError(f"not an exported PostgreSQL snapshot id: {value!r}")
    return value


def plan_key(attempt: str) -> str:
    return f"{RUNS_PREFIX}{attempt_id(attempt)}/plan.json"


def released_key(attempt: str) -> str:
    """Written once the workers are done (or failed): the snapshot's holder then lets it go."""
    return f"{RUNS_PREFIX}{attempt_id(attempt)}/released.json"


@dataclass(frozen=True)
class ExtractRequest:
    """What an extract is asked for: a run id for the logs and the manifest, the window (an open
    start means "from the committed watermark") and whether whole tables are to be re-read."""

    run_id: str
    window_start: datetime | None
    window_end: datetime
    full_scan: bool = False


@dataclass(frozen=True)
class ExtractPlan:
    """``tables`` are the ones to read, in load order; every other table is carried forward.
    ``batch_id`` is None when nothing is pending. ``lowers`` are naive source wall times."""

    run_id: str
    window_start: datetime | None
    window_end: datetime
    full: bool
    rehash: bool
    manifest_key: str | None
    batch_id: str | None
    tables: tuple[str, ...]
    lowers: dict[str, datetime | None] = field(default_factory=dict)
    extras: dict[str, list[str]] = field(default_factory=dict)
    overlap: timedelta = timedelta(0)
    snapshot: str | None = None
    # When the plan was made: a fanned-out extract's seconds are counted from here.
    planned_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "window_start": None if self.window_start is None else self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "full": self.full,
            "rehash": self.rehash,
            "manifest_key": self.manifest_key,
            "batch_id": self.batch_id,
            "tables": list(self.tables),
            "lowers": {name: format_naive(value) for name, value in self.lowers.items()},
            "extras": self.extras,
            "overlap_seconds": self.overlap.total_seconds(),
            "snapshot": self.snapshot,
            "planned_at": None if self.planned_at is None else self.planned_at.isoformat(),
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ExtractPlan:
        try:
            tables = tuple(str(name) for name in document["tables"])
            unknown = sorted(set(tables) - set(LOAD_ORDER))
            if unknown:
                raise ValueError(f"unknown tables {unknown}")
            end = stored_instant(document["window_end"])
            assert end is not None
            snapshot = document.get("snapshot")
            return cls(
                run_id=str(document["run_id"]),
                window_start=stored_instant(document.get("window_start")),
                window_end=end,
                full=bool(document["full"]),
                rehash=bool(document["rehash"]),
                manifest_key=document.get("manifest_key"),
                batch_id=document.get("batch_id"),
                tables=tables,
                lowers={
                    str(name): parse_naive(value)
                    for name, value in (document.get("lowers") or {}).items()
                },
                extras={
                    str(name): [str(column) for column in columns]
                    for name, columns in (document.get("extras") or {}).items()
                },
                overlap=timedelta(seconds=float(document.get("overlap_seconds", 0))),
                snapshot=None if snapshot is None else snapshot_id(snapshot),
                planned_at=stored_instant(document.get("planned_at")),
            )
        except (KeyError, TypeError, ValueError, AssertionError) as exc:
            raise SettingsError(f"extract plan is unreadable: {exc}") from None

    def lower(self, table: str) -> datetime | None:
        """Where ``table`` is re-read from; None for a full read."""
        return None if self.full else self.lowers.get(table)

"""The extract spread over many invocations: one snapshot, one reader per table, one commit.

The state machine's ``Extract`` step runs two branches side by side. One invocation holds a
read-only transaction on the source, exports its snapshot, writes the plan (which tables to read,
the batch id, the previous manifest) into the ingestion lake and keeps the transaction open until
the workers are done. The other branch waits for the plan, runs a ``Map`` of one worker per
planned table (each imports the snapshot, so all tables are read as of one instant however many
workers there are), then commits one manifest naming every worker's objects. Until that commit
nothing is visible, so a failure anywhere leaves the lake as it was and the next attempt (with a
new attempt id, hence a new plan) reads the same rows again.

The plan and the release marker live under ``_runs/<attempt>/``, write-once like everything else
in the lake.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from totes.contracts.ingestion import TableEntry, load_previous
from totes.db import connect
from totes.errors import ObjectExistsError, SettingsError, SourceError, TotesError, reason
from totes.extract import reader
from totes.extract.extractor import (
    capture_planned,
    finish_extract,
    plan_extract,
    previous_at,
    start_planned,
)
from totes.extract.plan import ExtractPlan, ExtractRequest, plan_key, released_key
from totes.extract.rows import SnapshotRows
from totes.lake import BackgroundPuts, Lake, SameBytesPuts, get_json, put_json
from totes.observability import log
from totes.settings import DbSettings, ExtractSettings
from totes.tables import LOAD_ORDER

# How often a waiting invocation looks at the lake (one HEAD request each time), and how often the
# snapshot's holder asks whether its execution still runs (one DescribeExecution).
POLL_SECONDS = 0.25
STATUS_SECONDS = 2.0


def _never() -> bool:
    return False


def _wait_for(
    found: Callable[[], bool],
    deadline: float,
    poll_seconds: float,
    what: str,
    *,
    abandoned: Callable[[], bool] = _never,
) -> None:
    """Wait until ``found()``; raise at ``deadline`` or once ``abandoned()`` (asked every
    ``STATUS_SECONDS``) says no one is left to wait for."""
    next_status = time.monotonic() + STATUS_SECONDS
    while not found():
        now = time.monotonic()
        if now >= deadline:
            raise SourceError(f"gave up waiting for {what}")
        if now >= next_status:
            if abandoned():
                raise SourceError(f"stopped waiting for {what}: the execution has ended")
            next_status = now + STATUS_SECONDS
        time.sleep(poll_seconds)


def hold_snapshot(
    source: DbSettings,
    lake: Lake,
    request: ExtractRequest,
    *,
    attempt: str,
    settings: ExtractSettings,
    deadline: float,
    abandoned: Callable[[], bool] = _never,
    poll_seconds: float = POLL_SECONDS,
    now: datetime | None = None,
    last_try: bool = True,
) -> dict[str, Any]:
    """Plan the extract inside an exported snapshot and keep it open until it is released.

    The wait ends early with an error when ``abandoned()`` (the execution is over: the other
    branch failed) and at ``deadline`` (``time.monotonic()``): the snapshot is then let go, and
    any worker still reading fails (nothing is committed). A failure before the plan exists is
    written where the plan would be, so the waiting branch stops at once; when the source refused
    the credentials and this is not ``last_try`` (the handler re-reads the secret and calls again),
    the retry writes the plan instead."""
    started = time.monotonic()
    key = plan_key(attempt)
    try:
        with connect(
            source, error=SourceError, role="source", application_name="totes-extract-snapshot"
        ) as conn:
            try:
                reader.begin_snapshot(conn, settings.statement_timeout)
                snapshot = reader.export_snapshot(conn)
                plan = plan_extract(
                    conn, load_previous(lake), request, settings, now=now, snapshot=snapshot
                )
            except psycopg.Error as exc:
                raise SourceError(f"planning the extract failed: {reason(exc)}") from None
            put_json(lake, key, plan.to_json())
            log(
                "extract.snapshot_held",
                attempt=attempt,
                run_id=request.run_id,
                batch_id=plan.batch_id,
                tables=list(plan.tables),
                full_scan=plan.full,
            )
            if plan.tables:
                _wait_for(
                    lambda: lake.exists(released_key(attempt)),
                    deadline,
                    poll_seconds,
                    f"the workers of extract attempt {attempt} to finish",
                    abandoned=abandoned,
                )
    except TotesError as exc:
        if (last_try or not exc.credentials_rejected) and not lake.exists(key):
            put_json(lake, key, {"failed": str(exc)})
        raise
    held = round(time.monotonic() - started, 3)
    log("extract.snapshot_released", attempt=attempt, run_id=request.run_id, seconds=held)
    return {"attempt": attempt, "tables": list(plan.tables), "held_seconds": held}


def read_plan(lake: Lake, attempt: str) -> ExtractPlan:
    document = get_json(lake, plan_key(attempt))
    if "failed" in document:
        raise SourceError(f"the extract's snapshot holder failed: {document['failed']}")
    return ExtractPlan.from_json(document)


def await_plan(
    lake: Lake,
    *,
    attempt: str,
    deadline: float,
    abandoned: Callable[[], bool] = _never,
    poll_seconds: float = POLL_SECONDS,
) -> dict[str, Any]:
    """The plan's tables (the ``Map`` state's items) once the holder has written it. Stops once
    ``abandoned()``: the holder's branch failed without a word and the execution has ended."""
    _wait_for(
        lambda: lake.exists(plan_key(attempt)),
        deadline,
        poll_seconds,
        f"the plan of extract attempt {attempt}",
        abandoned=abandoned,
    )
    plan = read_plan(lake, attempt)
    return {"attempt": attempt, "batch_id": plan.batch_id, "tables": list(plan.tables)}


def extract_table(
    source: DbSettings, lake: Lake, *, attempt: str, table: str, settings: ExtractSettings
) -> dict[str, Any]:
    """One planned table read in the holder's snapshot; its objects stay invisible until the
    commit names them. Returns the table's manifest entry for the commit."""
    plan = read_plan(lake, attempt)
    if table not in plan.tables:
        raise SettingsError(f"extract attempt {attempt} did not plan to read {table}", table=table)
    previous = previous_at(lake, plan.manifest_key)
    # A retried invocation reads the same snapshot and writes the same bytes under the same keys.
    writes = BackgroundPuts(SameBytesPuts(lake))
    spool = tempfile.TemporaryDirectory(prefix="totes-extract-")
    try:
        with SnapshotRows.open(
            source,
            snapshot=plan.snapshot,
            statement_timeout=settings.statement_timeout,
            application_name="totes-extract-table",
        ) as rows:
            started = start_planned(rows, plan, table)
            captured = capture_planned(started, writes, plan, previous, table, Path(spool.name))
        writes.flush()
    finally:
        writes.close()  # waits for every write, so the spool can go
        spool.cleanup()
    return {
        "table": table,
        "entry": captured.entry.to_json(),
        "bytes": captured.bytes,
        "seconds": round(captured.seconds, 4),
    }


def release(lake: Lake, attempt: str, why: str) -> bool:
    """Let the holder end its transaction. False when it was released already (a retry)."""
    try:
        put_json(
            lake, released_key(attempt), {"released_at": datetime.now(UTC).isoformat(), "why": why}
        )
    except ObjectExistsError:
        return False
    return True


def commit_parts(
    lake: Lake, *, attempt: str, parts: Sequence[Any], now: datetime | None = None
) -> dict[str, Any]:
    """Release the snapshot, then commit one manifest over every worker's entry."""
    release(lake, attempt, "workers done")
    plan = read_plan(lake, attempt)
    # The summary's seconds are the whole fanned-out extract's, from the plan on.
    since_plan = (datetime.now(UTC) - (plan.planned_at or datetime.now(UTC))).total_seconds()
    started = time.perf_counter() - max(since_plan, 0.0)
    entries: dict[str, TableEntry] = {}
    for part in parts:
        if not isinstance(part, dict) or part.get("table") not in LOAD_ORDER:
            raise SettingsError(f"extract commit got a part that names no table: {part!r}")
        if part["table"] in entries:
            raise SettingsError(f"extract commit got {part['table']} twice", table=part["table"])
        entries[part["table"]] = TableEntry.from_json(part["entry"])
    return finish_extract(
        lake, plan, previous_at(lake, plan.manifest_key), entries, started=started, now=now
    )

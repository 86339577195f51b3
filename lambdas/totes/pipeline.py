"""``totes run``: one whole cycle in this process, extract -> transform -> load.

The same functions the three Lambdas call, in the same order, against the configured source,
lakes and warehouse. The extract window is ``[committed watermark, now)``; every stage then takes
everything pending, so a cycle after a crash picks up where the last one stopped. The cycle holds
the cycle lock (:mod:`totes.lock.lease`) throughout, as a Step Functions execution does.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from totes.extract.extractor import committed_watermark, run_extract
from totes.lake import Lake, open_lake
from totes.load.loader import load_pending
from totes.load.migrations import migrate
from totes.lock.cli import add_wait_option
from totes.lock.lease import command_holding
from totes.settings import (
    DbSettings,
    ExtractSettings,
    extract_settings,
    ingestion_lake,
    processed_lake,
    source_db,
    warehouse_db,
)
from totes.transform.transformer import transform_pending


@dataclass(frozen=True)
class Stack:
    source: DbSettings
    ingestion: Lake
    processed: Lake
    warehouse: DbSettings
    settings: ExtractSettings


def configured_stack() -> Stack:
    return Stack(
        source=source_db(),
        ingestion=open_lake(ingestion_lake()),
        processed=open_lake(processed_lake()),
        warehouse=warehouse_db(),
        settings=extract_settings(),
    )


def run_cycle(
    stack: Stack,
    *,
    full_scan: bool = False,
    now: datetime | None = None,
    wait: timedelta = timedelta(0),
) -> dict[str, Any]:
    """Run extract, transform and load once under the cycle lock; returns the cycle's summary.

    Raises :class:`~totes.errors.CycleBusyError` when another cycle still holds the lock after
    ``wait``."""
    with command_holding(stack.ingestion, "totes-run", wait.total_seconds()) as lease:
        summary = _cycle(stack, full_scan=full_scan, now=now)
    return {**summary, "lock_holder": lease.holder}


def _cycle(stack: Stack, *, full_scan: bool, now: datetime | None) -> dict[str, Any]:
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    window_end = now or datetime.now(UTC)
    run_id = f"local-{uuid.uuid4().hex[:12]}"

    mark = time.perf_counter()
    extracted = run_extract(
        stack.source,
        stack.ingestion,
        run_id=run_id,
        window_start=committed_watermark(stack.ingestion),
        window_end=window_end,
        full_scan=full_scan,
        settings=stack.settings,
    )
    seconds["extract"] = round(time.perf_counter() - mark, 3)

    mark = time.perf_counter()
    transformed = transform_pending(stack.ingestion, stack.processed)
    seconds["transform"] = round(time.perf_counter() - mark, 3)

    mark = time.perf_counter()
    migrate(stack.warehouse)
    loaded = load_pending(stack.warehouse, stack.processed)
    seconds["load"] = round(time.perf_counter() - mark, 3)
    seconds["total"] = round(time.perf_counter() - started, 3)

    return {
        "run_id": run_id,
        "full_scan": bool(extracted.get("full_scan", full_scan)),
        "batch_id": extracted.get("batch_id"),
        "landed": extracted.get("rows", {}),
        "transformed": transformed.get("rows", {}),
        "quarantined": transformed.get("quarantined", {}),
        "loaded": loaded["rows"],
        "fact_versions_added": loaded["fact_versions_added"],
        "batches_loaded": loaded["batches"],
        "seconds": seconds,
    }


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = subparsers.add_parser(
        "run",
        help="one whole cycle: extract, transform, load",
        description="Run one whole cycle (extract, transform, load) in this process under the "
        "cycle lock, and print its JSON summary. Exits 75 when another cycle holds the lock.",
    )
    run.add_argument(
        "--full-scan", action="store_true", help="re-read whole tables to catch silent edits"
    )
    add_wait_option(run)
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    summary = run_cycle(
        configured_stack(), full_scan=args.full_scan, wait=timedelta(seconds=args.wait)
    )
    print(json.dumps(summary, sort_keys=False))
    return 0
